#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The run verb: a command in a mount namespace of its own whose /usr and /opt carry the images,
# for every --private-users= form (uid inside, ownership of image files inside and as seen from
# the host through /proc/PID/root, uid_map); exit status, signals and exec failures passed
# through like a shell; optional and missing images; per-image mount options; --user=;
# --discover. After every run: nothing mounted on our side, no loop device left.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup unshare
setup_merge_scratch

# A world-writable exchange directory: commands running as unprivileged host ids write to it.
# (/tmp is our private tmpfs and the command's namespace is a slave of ours.)
PUB=$(mktemp -d /tmp/run-pub.XXXXXX)
chmod 1777 "$PUB"

# Test user, only in this mount namespace (the machine's files are never written).
TEST_USER=sxruntest
TEST_USER_UID=4242
TEST_USER_GID=4343
add_test_user "$TEST_USER" "$TEST_USER_UID" "$TEST_USER_GID" /nonexistent /usr/sbin/nologin
assert_eq "$(getent passwd "$TEST_USER" | cut -d: -f3,4)" "$TEST_USER_UID:$TEST_USER_GID" "test user in the private namespace"

# Images. rx.raw (squashfs): usr/bin/rx-hello (root), usr/lib/rx/nobody (65534), usr/lib/rx/suid
# (root, 4755). re.raw (erofs, root-owned): a second image for stacking and --discover.
T=$SCRATCH/tree-rx
make_ext_tree "$T" rx
mkdir -p "$T/usr/lib/rx"
echo nobody >"$T/usr/lib/rx/nobody"
cp /usr/bin/id "$T/usr/lib/rx/suid"
chown -R 0:0 "$T"
chown 65534:65534 "$T/usr/lib/rx/nobody"
chmod 4755 "$T/usr/lib/rx/suid"
IMG=$SCRATCH/rx.raw
mksquashfs "$T" "$IMG" -noappend -quiet -no-progress >/dev/null
IMG2=$SCRATCH/re.raw
make_ext_erofs "$IMG2" re

# No image may be merged on the real /usr of this namespace; the command sees the host's /usr.
[[ ! -e /usr/bin/rx-hello && ! -e /usr/bin/re-hello ]] || skip "/usr already carries rx-hello/re-hello"

wait_loops_settled
snapshot_state "$SCRATCH/state.before"

# after_run WHAT: the caller's mount table and loop devices are as before the run.
after_run() {
        assert_no_scratch_loops "$1: after the run"
        assert_state_unchanged "$SCRATCH/state.before" "$1: our namespace"
}

# wait_file FILE: up to 10 s for FILE to be non-empty.
wait_file() {
        local i
        for i in $(seq 1 200); do
                [[ -s $1 ]] && return 0
                sleep 0.05
        done
        return 1
}

# ---------------------------------------------------------------------------------------------
# check_private_users FORM: run a command that records what it sees and waits; look at it from
# the host through /proc/PID/root while it waits.
check_private_users() {
        local form=$1 d w rc base map_want uid_want
        log "--private-users=$form"
        d=$(mktemp -d "$PUB/pu.XXXXXX")
        chmod 1777 "$d"
        "$SYSEXT_IDMAP" run --private-users="$form" --image="$IMG" -- sh -c '
                d=$1
                id -u >"$d/uid"
                stat -c %u /usr/bin/rx-hello >"$d/owner-root"
                stat -c %u /usr/lib/rx/nobody >"$d/owner-nobody"
                stat -c %u /opt/rx/data >"$d/owner-opt"
                rx-hello >"$d/hello" 2>&1
                awk "{ print \$1, \$2, \$3 }" /proc/self/uid_map >"$d/uid_map"
                echo $$ >"$d/pid"
                i=0
                while [ ! -e "$d/go" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done' \
                sh "$d" >"$d/stdout" 2>"$d/stderr" &
        w=$!
        if ! wait_file "$d/pid"; then
                fail "$form: the command did not start"
                sed 's/^/    stderr: /' "$d/stderr"
                touch "$d/go"
                wait "$w" || true
                return
        fi
        local pid
        pid=$(cat "$d/pid")
        # What the host sees of the command's /usr, while it runs.
        local host_root host_nobody host_map
        host_root=$(stat -c %u "/proc/$pid/root/usr/bin/rx-hello" 2>&1)
        host_nobody=$(stat -c %u "/proc/$pid/root/usr/lib/rx/nobody" 2>&1)
        host_map=$(awk '{ print $1, $2, $3 }' "/proc/$pid/uid_map")
        touch "$d/go"
        rc=0
        wait "$w" || rc=$?
        assert_eq "$rc" 0 "$form: exit status"

        case $form in
                no) base=0; uid_want=0; map_want="0 0 4294967295" ;;
                pick)
                        base=$(sed -n 's/^Picked ids \([0-9]*\)….*/\1/p' "$d/stderr")
                        assert_contains "$(cat "$d/stderr")" "Picked ids " "$form: stderr"
                        [[ -n $base ]] || base=unknown
                        uid_want=0; map_want="0 $base 65536" ;;
                0:200000:65536) base=200000; uid_want=0; map_want="0 200000 65536" ;;
                userns:*) base=100000; uid_want=0; map_want="0 100000 65536" ;;
        esac
        assert_eq "$(cat "$d/uid")" "$uid_want" "$form: id -u inside"
        assert_eq "$(cat "$d/uid_map")" "$map_want" "$form: /proc/self/uid_map inside"
        assert_eq "$host_map" "$map_want" "$form: the command's uid_map seen from the host"
        assert_eq "$(cat "$d/owner-root")" 0 "$form: root-owned image file inside"
        assert_eq "$(cat "$d/owner-opt")" 0 "$form: root-owned /opt file inside"
        assert_eq "$(cat "$d/owner-nobody")" 65534 "$form: 65534-owned image file inside"
        assert_eq "$(cat "$d/hello")" "hello from rx" "$form: rx-hello runs inside"
        if [[ $base =~ ^[0-9]+$ ]]; then
                assert_eq "$host_root" "$base" "$form: root-owned image file seen from the host"
                if [[ $form == no ]]; then
                        assert_eq "$host_nobody" 65534 "$form: 65534-owned image file seen from the host"
                else
                        assert_eq "$host_nobody" "$((base + 65534))" "$form: 65534-owned image file seen from the host"
                fi
        fi
        after_run "$form"
}

make_test_userns
assert_eq "$(awk '{ print $1, $2, $3 }' /proc/$USERNS_PID/uid_map)" "0 100000 65536" "test userns uid_map"
for form in no pick 0:200000:65536 "userns:/proc/$USERNS_PID/ns/user"; do
        check_private_users "$form"
done
kill_userns

log "concurrent --private-users=pick runs get distinct ranges"
d=$(mktemp -d "$PUB/pick.XXXXXX")
"$SYSEXT_IDMAP" run --private-users=pick --image="$IMG" -- sh -c 'sleep 1' 2>"$d/a" &
w1=$!
"$SYSEXT_IDMAP" run --private-users=pick --image="$IMG" -- sh -c 'sleep 1' 2>"$d/b" &
w2=$!
rc1=0 rc2=0
wait "$w1" || rc1=$?
wait "$w2" || rc2=$?
assert_eq "$rc1:$rc2" 0:0 "two concurrent pick runs: exit status"
a=$(sed -n 's/^Picked ids \([0-9]*\)….*/\1/p' "$d/a")
b=$(sed -n 's/^Picked ids \([0-9]*\)….*/\1/p' "$d/b")
if [[ -n $a && -n $b && $a != "$b" ]]; then
        pass "two concurrent pick runs: distinct ranges ($a, $b)"
else
        fail "two concurrent pick runs: ranges '$a' and '$b'"
fi
after_run "concurrent pick"

# ---------------------------------------------------------------------------------------------
log "exit status and exec failures, as a shell"
run "$SYSEXT_IDMAP" run --image="$IMG" -- sh -c 'exit 3'
assert_eq "$LAST_RC" 3 "exit 3 passed through"
after_run "exit 3"
run "$SYSEXT_IDMAP" run --image="$IMG" -- sh -c 'kill -SEGV $$'
assert_eq "$LAST_RC" 139 "killed by SIGSEGV -> 128+11"
after_run "SIGSEGV"
run "$SYSEXT_IDMAP" run --image="$IMG" -- "$SCRATCH/no-such-command"
assert_eq "$LAST_RC" 127 "missing command -> 127"
assert_contains "$LAST_STDERR" "no-such-command" "missing command: stderr"
after_run "missing command"
run "$SYSEXT_IDMAP" run --image="$IMG" -- no-such-command-sxidmap
assert_eq "$LAST_RC" 127 "command not in PATH -> 127"
echo 'echo hi' >"$SCRATCH/not-executable"
chmod 0644 "$SCRATCH/not-executable"
run "$SYSEXT_IDMAP" run --image="$IMG" -- "$SCRATCH/not-executable"
assert_eq "$LAST_RC" 126 "non-executable command -> 126"
assert_contains "$LAST_STDERR" "not-executable" "non-executable command: stderr"
after_run "non-executable"
run "$SYSEXT_IDMAP" run --image="$IMG" -- sh -c 'rx-hello; echo "$@"' sh --image=/x --private-users=bogus
assert_eq "$LAST_RC" 0 "options after -- belong to the command: exit status"
assert_eq "$LAST_STDOUT" $'hello from rx\n--image=/x --private-users=bogus' "options after -- reach the command"

log "kill -TERM to the wrapper reaches the command"
d=$(mktemp -d "$PUB/term.XXXXXX")
"$SYSEXT_IDMAP" run --image="$IMG" -- sh -c '
        d=$1
        trap "echo TERM >>\"$d/marker\"; trap - TERM; kill -TERM \$\$" TERM
        echo $$ >"$d/pid"
        i=0
        while [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
        echo timeout >>"$d/marker"' sh "$d" 2>"$d/stderr" &
w=$!
if wait_file "$d/pid"; then
        cpid=$(cat "$d/pid")
        [[ $cpid != "$w" ]] && pass "the command runs as a child of the wrapper" || fail "command pid is the wrapper's"
        kill -TERM "$w"
        rc=0
        wait "$w" || rc=$?
        assert_eq "$rc" 143 "wrapper status after kill -TERM (128+15)"
        assert_eq "$(cat "$d/marker" 2>/dev/null)" TERM "the command's TERM trap ran once"
else
        fail "TERM: the command did not start"
        kill "$w" 2>/dev/null || true
        wait "$w" || true
fi
after_run "kill -TERM"

# ---------------------------------------------------------------------------------------------
log "optional and missing images"
run "$SYSEXT_IDMAP" run --image=-"$SCRATCH/missing.raw" -- sh -c 'test -e /usr/bin/rx-hello && echo yes || echo no'
assert_eq "$LAST_RC" 0 "--image=-/missing: exit status"
assert_eq "$LAST_STDOUT" no "--image=-/missing: skipped, the command runs without"
after_run "--image=-/missing"
run "$SYSEXT_IDMAP" run --image=-"$SCRATCH/missing.raw" --image="$IMG" -- rx-hello
assert_eq "$LAST_RC" 0 "--image=-/missing --image=IMG: exit status"
assert_eq "$LAST_STDOUT" "hello from rx" "--image=-/missing --image=IMG: IMG merged"
after_run "--image=-/missing --image=IMG"
snapshot_state "$SCRATCH/state.before"
run "$SYSEXT_IDMAP" run --image="$SCRATCH/missing.raw" -- touch "$PUB/ran-missing"
assert_eq "$LAST_RC" 1 "--image=/missing: exit status"
assert_one_stderr_line "missing.raw"
[[ ! -e $PUB/ran-missing ]] && pass "--image=/missing: the command did not run" || fail "--image=/missing: the command ran"
after_run "--image=/missing"
run "$SYSEXT_IDMAP" run --image="$IMG" --image="$IMG2" -- sh -c 'rx-hello; re-hello; cat /opt/re/data'
assert_eq "$LAST_STDOUT" $'hello from rx\nhello from re\nre data' "two images stacked"
after_run "two images"

log "per-image mount options"
run "$SYSEXT_IDMAP" run --image="$IMG:root:nosuid" -- sh -c 'stat -c %a /usr/lib/rx/suid; awk "\$5 == \"/usr\" { for (i = 7; \$i != \"-\"; i++) ; print \$(i + 1) }" /proc/self/mountinfo | tail -n 1'
assert_eq "$LAST_RC" 0 "--image=IMG:root:nosuid: exit status"
assert_eq "$LAST_STDOUT" $'4755\noverlay' "--image=IMG:root:nosuid: setuid bit shown, /usr an overlay"
after_run "--image=IMG:root:nosuid"
# The effect of nosuid on exec through the overlay: the kernel checks the overlay's own mount, not
# the layer's, so the per-image nosuid goes on the overlay of the command's namespace.
run "$SYSEXT_IDMAP" run --image="$IMG:root:nosuid" -- setpriv --reuid=65534 --regid=65534 --clear-groups /usr/lib/rx/suid -u
assert_eq "$LAST_STDOUT" 65534 "--image=IMG:root:nosuid: a setuid-root file run by 65534 does not elevate (nosuid is on the overlay)"
run "$SYSEXT_IDMAP" run --image="$IMG:root:nosuid,nodev:usr:nosuid,ro" -- true
assert_eq "$LAST_RC" 0 "--image=IMG:root:nosuid,nodev:usr:nosuid,ro parses"
run "$SYSEXT_IDMAP" run --image="$IMG:usr:noexec" -- true
assert_eq "$LAST_RC" 1 "--image=IMG:usr:noexec is refused (it would make all of /usr noexec)"
assert_one_stderr_line
assert_contains "$LAST_STDERR" "noexec cannot be applied to one layer"
after_run "two partitions' options"
for bad in "$IMG:usr:bogus" "$IMG:home:nosuid" "$IMG:usr" relative.raw; do
        run "$SYSEXT_IDMAP" run --image="$bad" -- touch "$PUB/ran-bad"
        assert_eq "$LAST_RC" 1 "--image=${bad/#$SCRATCH/\$SCRATCH}: exit status"
        assert_one_stderr_line
done
[[ ! -e $PUB/ran-bad ]] && pass "bad --image=: the command did not run" || fail "bad --image=: the command ran"
run "$SYSEXT_IDMAP" run --private-users=bogus --image="$IMG" -- true
assert_eq "$LAST_RC" 1 "--private-users=bogus: exit status"
assert_one_stderr_line
run "$SYSEXT_IDMAP" run --private-users=pick --user="$TEST_USER" --image="$IMG" -- true
assert_eq "$LAST_RC" 1 "--private-users= with --user=: exit status"
assert_one_stderr_line
after_run "bad options"

# ---------------------------------------------------------------------------------------------
log "--user=$TEST_USER"
run "$SYSEXT_IDMAP" run --user="$TEST_USER" --image="$IMG" -- sh -c '
        id -u; id -g
        stat -c %u:%g /usr/lib/rx/nobody
        stat -c %u:%g /usr/lib/rx/suid
        stat -c %u /usr/bin/rx-hello
        rx-hello
        awk "\$5 == \"/usr\" { print \$6 }" /proc/self/mountinfo | tail -n 1'
assert_eq "$LAST_RC" 0 "--user: exit status"
mapfile -t out <<<"$LAST_STDOUT"
assert_eq "${out[0]:-}" "$TEST_USER_UID" "--user: id -u"
assert_eq "${out[1]:-}" "$TEST_USER_GID" "--user: id -g"
assert_eq "${out[2]:-}" "$TEST_USER_UID:$TEST_USER_GID" "--user: 65534-owned image file appears as the user"
assert_eq "${out[3]:-}" "65534:65534" "--user: root-owned setuid file appears unmapped"
assert_eq "${out[4]:-}" 65534 "--user: root-owned file appears unmapped"
assert_eq "${out[5]:-}" "hello from rx" "--user: rx-hello runs"
opts=${out[6]:-}
assert_contains ",$opts," ",nosuid," "--user: /usr overlay mount options"
assert_contains ",$opts," ",nodev," "--user: /usr overlay mount options"
after_run "--user"
run "$SYSEXT_IDMAP" run --user=no-such-user-sxidmap --image="$IMG" -- true
assert_eq "$LAST_RC" 1 "--user=no-such-user: exit status"
assert_one_stderr_line "no-such-user-sxidmap"
after_run "--user=no-such-user"

# ---------------------------------------------------------------------------------------------
log "--discover uses the host's extension directories"
for dir in /etc/extensions /var/lib/extensions; do
        # Hide whatever this machine has there; only our image may be discovered.
        [[ -d $dir ]] && mount -t tmpfs -o mode=0755 tmpfs "$dir"
done
mkdir -p /run/extensions
cp "$IMG2" /run/extensions/re.raw
snapshot_state "$SCRATCH/state.before"
run "$SYSEXT_IDMAP" run --discover -- re-hello
assert_eq "$LAST_RC" 0 "--discover: exit status"
assert_eq "$LAST_STDOUT" "hello from re" "--discover: /run/extensions/re.raw merged"
after_run "--discover"
run "$SYSEXT_IDMAP" run --discover --image="$IMG" --private-users=pick -- sh -c 'rx-hello; re-hello; stat -c %u /usr/bin/re-hello'
assert_eq "$LAST_RC" 0 "--discover --image --private-users=pick: exit status"
assert_eq "$LAST_STDOUT" $'hello from rx\nhello from re\n0' "--discover --image: both merged, idmapped"
after_run "--discover --image"
run "$SYSEXT_IDMAP" run -- sh -c 'test -e /usr/bin/re-hello && echo yes || echo no'
assert_eq "$LAST_STDOUT" no "without --discover nothing is discovered"
rm -f /run/extensions/re.raw
# A discovered symlink keeps its own name (re), not its target's (store-v2): the
# extension-release looked up is extension-release.re.
cp "$IMG2" "$SCRATCH/store-v2.raw"
ln -s "$SCRATCH/store-v2.raw" /run/extensions/re.raw
run "$SYSEXT_IDMAP" run --discover -- re-hello
assert_eq "$LAST_STDOUT" "hello from re" "--discover: a symlinked image keeps the name of the link"
after_run "--discover through a symlink"
rm -f /run/extensions/re.raw "$SCRATCH/store-v2.raw"

finish
