# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers shared by the merge/refresh/unmerge integration tests (test-merge, test-idmap-forms,
# test-refresh, test-compat-systemd, test-atomicity). Source after $TEST_LIB.

# sx ARGS...: the binary under test; options must come before the verb.
sx() {
        "$SYSEXT_IDMAP" "$@"
}

# is_mount PATH: something is mounted on PATH; assert_[not_]mounted PATH [WHAT].
is_mount() { awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; }
assert_mounted() { if is_mount "$1"; then pass "${2:-$1} is a mount"; else fail "${2:-$1} is not a mount"; fi; }
assert_not_mounted() { if is_mount "$1"; then fail "${2:-$1} is a mount"; else pass "${2:-$1} is no mount"; fi; }

# loops_of_scratch: loop devices whose backing file lives below $SCRATCH (one "NAME FILE" a line).
loops_of_scratch() {
        losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null |
                awk -v s="$SCRATCH" 'index($2, s "/") == 1' | sort
}

# assert_no_scratch_loops WHAT: no loop device is backed by a scratch file. Loop devices of an
# unmerged image are autoclear, and the kernel drops them asynchronously once the last mount is
# gone, so allow a short settle time.
assert_no_scratch_loops() {
        local what=${1:-after unmerge} i left
        for i in $(seq 1 50); do
                left=$(loops_of_scratch)
                [[ -z $left ]] && break
                sleep 0.1
        done
        if [[ -z $left ]]; then
                pass "$what: no loop device backed by a scratch file remains"
        else
                fail "$what: loop devices remain:"
                printf '%s\n' "$left" | sed 's/^/    /'
        fi
}

# snapshot_state_settled FILE: like snapshot_state, after letting autoclear loop devices go away.
wait_loops_settled() {
        local i prev cur
        prev=$(loops_of_scratch)
        for i in $(seq 1 20); do
                sleep 0.1
                cur=$(loops_of_scratch)
                [[ $cur == "$prev" ]] && return 0
                prev=$cur
        done
}

# mounts_below DIR: mountinfo mount points at or below DIR.
mounts_below() {
        awk -v s="$1" '$5 == s || index($5, s "/") == 1 { print $5 }' /proc/self/mountinfo
}

# tree_snapshot DIR OUT: every file below DIR with size and mtime (not crossing mounts, so a
# merged overlay does not show up as a change of the root).
tree_snapshot() {
        find "$1" -xdev -printf '%p %s %T@ %U:%G %m\n' 2>/dev/null | sort >"$2"
}

assert_tree_unchanged() {
        local dir=$1 snap=$2 what=${3:-tree} now
        now=$(mktemp "$SCRATCH/tree.XXXXXX")
        tree_snapshot "$dir" "$now"
        if diff -u "$snap" "$now" >"$now.diff"; then
                pass "$what: no file changed below ${dir/#$SCRATCH/\$SCRATCH}"
        else
                fail "$what: files changed:"
                sed 's/^/    /' "$now.diff" | head -n 30
        fi
        rm -f "$now" "$now.diff"
}

# status_json ROOT: `status --json=short` for ROOT.
status_json() {
        "$SYSEXT_IDMAP" --root="$1" --json=short status
}

# merged_exts ROOT HIERARCHY: the extensions of the merge on HIERARCHY as "a,b", or "-" if not merged.
merged_exts() {
        local j
        j=$(status_json "$1") || { echo "<status failed>"; return 0; }
        json_get "$j" "(lambda h: ','.join(h['extensions']) if h['merged'] else '-')([h for h in j if h['hierarchy'] == '$2'][0])"
}

# marker_dev DIR: the content of DIR/.systemd-sysext/dev, or "-".
marker_dev() {
        cat "$1/.systemd-sysext/dev" 2>/dev/null || echo -
}

# assert_stat_owner PATH WANT WHAT: `stat -c %u:%g PATH` equals WANT.
assert_owner() {
        assert_eq "$(stat -c %u:%g "$1" 2>&1)" "$2" "${3:-owner of ${1/#$SCRATCH/\$SCRATCH}}"
}

# Make a throwaway user namespace mapping 0 -> 100000 (65536 ids) without /etc/subuid.
# start_userns [UNSHARE_ARGS...]: a sleeping process in a user namespace of its own mapping
# 0 -> 100000 (65536 ids), plus whatever UNSHARE_ARGS add (e.g. -m --propagation private). Sets
# STARTED_PID; it is killed on exit with the other BG_PIDS.
start_userns() {
        local i
        unshare -U "$@" sleep 1000 &
        STARTED_PID=$!
        BG_PIDS="${BG_PIDS:-} $STARTED_PID"
        for i in $(seq 1 100); do
                [[ $(readlink /proc/$STARTED_PID/ns/user) != "$(readlink /proc/self/ns/user)" ]] && break
                sleep 0.02
        done
        echo '0 100000 65536' >/proc/$STARTED_PID/uid_map
        echo '0 100000 65536' >/proc/$STARTED_PID/gid_map
}
# Sets USERNS_PID (user namespace only); kill_userns kills it.
USERNS_PID=
make_test_userns() {
        start_userns
        USERNS_PID=$STARTED_PID
}
kill_userns() {
        if [[ -n $USERNS_PID ]]; then
                kill "$USERNS_PID" 2>/dev/null || true
                wait "$USERNS_PID" 2>/dev/null || true
                USERNS_PID=
        fi
}

# Chain our cleanup before lib.sh's: kill helpers we started, unmount, then lib's _cleanup.
_merge_cleanup() {
        local rc=$?
        # No errexit in here: "(exit $rc)" below would end the trap before lib.sh's cleanup ran.
        set +e
        kill_userns
        if [[ -n ${BG_PIDS:-} ]]; then
                kill $BG_PIDS 2>/dev/null || true
                wait $BG_PIDS 2>/dev/null || true
        fi
        (exit "$rc")
        _cleanup
}
setup_merge_scratch() {
        setup_scratch
        trap _merge_cleanup EXIT
}
