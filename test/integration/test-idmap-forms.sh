#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every --idmap= form, on a directory layer and a squashfs layer (squashfs can be idmapped since
# Linux 6.x): a file owned by the mapped on-disk id and one owned by an unmapped id, seen through
# the merge with `stat -c %u:%g`; the idmap field of `status --json`; bad specs.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup unshare
setup_merge_scratch

# A test user that exists only in this mount namespace: copies of passwd/group with one more
# entry, bind-mounted over the originals (the machine's files are never written).
TEST_USER=sxidmaptest
TEST_USER_UID=4242
TEST_USER_GID=4343
add_test_user "$TEST_USER" "$TEST_USER_UID" "$TEST_USER_GID" /nonexistent /usr/sbin/nologin
assert_eq "$(getent passwd "$TEST_USER" | cut -d: -f3,4)" "$TEST_USER_UID:$TEST_USER_GID" "test user in the private namespace"

make_test_userns
NS_PATH=/proc/$USERNS_PID/ns/user
assert_eq "$(awk '{ print $1, $2, $3 }' /proc/$USERNS_PID/uid_map)" "0 100000 65536" "test userns uid_map"

# Image with two owned files: usr/share/ids-NAME/{mapped,unmapped}.
# build_exts ROOT MAPPED_UID:GID UNMAPPED_UID:GID
build_exts() {
        local root=$1 mapped=$2 unmapped=$3 n t
        make_root "$root"
        for n in dx sx; do
                t=$SCRATCH/tree-$n-$RANDOM
                make_ext_tree "$t" "$n"
                mkdir -p "$t/usr/share/ids-$n"
                echo m >"$t/usr/share/ids-$n/mapped"
                echo u >"$t/usr/share/ids-$n/unmapped"
                chown -R "${mapped}" "$t"
                chown "${unmapped}" "$t/usr/share/ids-$n/unmapped"
                if [[ $n == dx ]]; then
                        mv "$t" "$root/var/lib/extensions/dx"
                else
                        # no -force-uid: squashfs keeps the tree's ownership
                        mksquashfs "$t" "$root/var/lib/extensions/sx.raw" -noappend -quiet -no-progress >/dev/null
                fi
        done
}

wait_loops_settled
snapshot_state "$SCRATCH/state.before"

# check_form NAME SPEC ONDISK_MAPPED WANT_MAPPED ONDISK_UNMAPPED WANT_UNMAPPED
check_form() {
        local name=$1 spec=$2 od_m=$3 want_m=$4 od_u=$5 want_u=$6 R n J
        log "--idmap=$spec ($name): on-disk $od_m -> $want_m, on-disk $od_u -> $want_u"
        R=$SCRATCH/root-$name
        build_exts "$R" "$od_m" "$od_u"
        assert_ok sx --root="$R" --idmap="$spec" --no-reload merge
        for n in dx sx; do
                assert_owner "$R/usr/share/ids-$n/mapped" "$want_m" "$name: $n mapped file through the merge"
                assert_owner "$R/usr/share/ids-$n/unmapped" "$want_u" "$name: $n unmapped file through the merge"
                assert_owner "$R/opt/$n/data" "$want_m" "$name: $n /opt file through the merge"
        done
        assert_owner "$R/var/lib/extensions/dx/usr/share/ids-dx/mapped" "$od_m" "$name: dx mapped file on disk"
        assert_eq "$("$R/usr/bin/sx-hello" 2>&1)" "hello from sx" "$name: sx-hello runs"
        # user: layers are a user's: no setuid, no devices through the overlay; others keep both
        local opts
        opts=$(awk -v m="$R/usr" '$5 == m { print $6 }' /proc/self/mountinfo | tail -n 1)
        if [[ $name == user ]]; then
                assert_contains "$opts" "nosuid" "$name: overlay mounted nosuid"
                assert_contains "$opts" "nodev" "$name: overlay mounted nodev"
        else
                assert_not_contains "$opts" "nosuid" "$name: overlay keeps setuid"
        fi
        J=$(status_json "$R")
        assert_eq "$(json_get "$J" "[h['idmap'] for h in j if h['hierarchy'] == '/usr'][0]")" "$spec" "$name: status --json idmap"
        assert_eq "$(json_get "$J" "sorted(set(l['idmap'] for h in j for l in h['layers']))")" "[\"$spec\"]" "$name: layers' idmap"
        assert_ok sx --root="$R" --no-reload unmerge
        assert_no_scratch_loops "$name: after unmerge"
        assert_state_unchanged "$SCRATCH/state.before" "$name: after merge + unmerge"
}

F=$FOREIGN_UID_BASE
check_form identity identity      1234:1235 1234:1235 70000:70001 70000:70001
check_form b        b:1000:0:1    1000:1000 0:0       1234:1234   65534:65534
check_form b-range  b:1000:500:10 1009:1009 509:509   1010:1010   65534:65534
# Ids are decimal as newuidmap reads them: 010 is ten (never octal eight), and status shows the spec.
check_form decimal  b:010:0:1     10:10     0:0       8:8         65534:65534
check_form u-g      u:1000:0:1,g:2000:5:1 1000:2000 0:5 1000:1000 0:65534
check_form foreign  foreign       $((F + 1000)):$((F + 1001)) 1000:1001 1000:1000 65534:65534
check_form user     "user:$TEST_USER" 65534:65534 "$TEST_USER_UID:$TEST_USER_GID" 0:0 65534:65534
check_form userns   "userns:$NS_PATH" 0:0 100000:100000 70000:70000 65534:65534
check_form pid      "pid:$USERNS_PID" 1000:1000 101000:101000 70000:70000 65534:65534

log "bad --idmap specs: exit 1, one line on stderr, nothing changed"
R=$SCRATCH/root-bad
build_exts "$R" 1000:1000 1234:1234
# Keep a merge in place too, so that a bad spec on refresh/merge cannot disturb it.
wait_loops_settled
snapshot_state "$SCRATCH/state.bad"
# (An empty spec is the default, identity: it is not in this list. "u:" alone maps no gids.)
for spec in bogus b:1000:0 b:1000:0:0 b:a:b:c x:1:2:3 u:1000:0:1 g:1000:0:1 user: \
            user:no-such-user-sxidmap "userns:$SCRATCH/nonexistent" userns:/proc/self/ns/user \
            "userns:$SCRATCH/passwd" pid:999999999 pid:abc foreign:1 identity,b:1:2:3 b:4294967295:0:2 \
            b:0x3e8:0:1 b:+1000:0:1 b:4294967296:0:1 pid:0x1; do
        for verb in merge refresh; do
                assert_fail sx --root="$R" --idmap="$spec" --no-reload $verb
                assert_eq "$LAST_RC" 1 "exit code of $verb --idmap='$spec'"
                assert_one_stderr_line
        done
        assert_state_unchanged "$SCRATCH/state.bad" "--idmap='$spec'"
done
if [[ -e $R/usr/.systemd-sysext ]]; then fail "a bad spec left a merge marker"; else pass "no merge marker after bad specs"; fi

log "a bad spec on a merged root leaves the merge alone"
assert_ok sx --root="$R" --idmap=b:1000:0:1 --no-reload merge
dev=$(marker_dev "$R/usr")
snapshot_state "$SCRATCH/state.merged"
assert_fail sx --root="$R" --idmap=b:1:2 --no-reload refresh
assert_one_stderr_line
assert_fail sx --root="$R" --idmap=user:no-such-user-sxidmap --no-reload refresh
assert_one_stderr_line "no-such-user-sxidmap"
assert_state_unchanged "$SCRATCH/state.merged" "refresh with bad specs on a merged root"
assert_eq "$(marker_dev "$R/usr")" "$dev" "dev marker after failed refreshes"
assert_owner "$R/usr/share/ids-sx/mapped" 0:0 "sx mapped file still idmapped"
assert_ok sx --root="$R" --no-reload unmerge
assert_state_unchanged "$SCRATCH/state.before" "at the end"

kill_userns
finish
