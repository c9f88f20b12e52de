#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# merge/refresh/unmerge/status --namespace-of=PID: the overlay is attached in the target's mount
# namespace, its layers idmapped into the target's user namespace (identity when it has none of
# its own); our mount table never changes; images are discovered on our side under --root, while
# compatibility follows the target's os-release. Refusals (process gone, our own mount
# namespace, bad image) exit 1 and change nothing on either side.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup unshare nsenter
setup_merge_scratch
BG_PIDS=
# The target's root may be an unmapped id in its user namespace: let it walk to our files.
chmod 0755 "$SCRATCH"

# Our mount table only. (While a target holds a merge, the loop devices of its layers exist, so
# snapshot_state's loop device list is compared only once nothing is merged anywhere.)
host_mounts() {
        awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo
}
assert_host_mounts_unchanged() {
        local snap=$1 what=$2
        if host_mounts | diff -u "$snap" - >"$SCRATCH/host.diff"; then
                pass "$what: our mounts unchanged"
        else
                fail "$what: our mounts changed:"
                sed 's/^/    /' "$SCRATCH/host.diff" | head -n 30
        fi
}

# Targets: sleeping processes in namespaces of their own, killed on exit (see lib-merge.sh).
# start_target_userns: user + mount namespace, 0 -> 100000 (65536 ids). Sets TARGET.
start_target_userns() {
        start_userns -m --propagation private
        TARGET=$STARTED_PID
}
# start_target_mntns [SETUP]: a mount namespace only; SETUP runs in it (sh -c) before sleeping.
start_target_mntns() {
        local i
        unshare -m --propagation private sh -c "${1:-true}; exec sleep 1000" &
        TARGET=$!
        BG_PIDS="$BG_PIDS $TARGET"
        for i in $(seq 1 100); do
                [[ $(readlink /proc/$TARGET/ns/mnt) != "$(readlink /proc/self/ns/mnt)" &&
                   $(readlink /proc/$TARGET/exe 2>/dev/null) == */sleep ]] && break
                sleep 0.02
        done
}

# The target's mount table without mount ids, like snapshot_state does for ours.
target_state() {
        awk '{ $1 = ""; $2 = ""; print }' "/proc/$1/mountinfo"
}
assert_target_unchanged() {
        local pid=$1 snap=$2 what=$3
        if target_state "$pid" | diff -u "$snap" - >"$SCRATCH/target.diff"; then
                pass "$what: the target's mounts unchanged"
        else
                fail "$what: the target's mounts changed:"
                sed 's/^/    /' "$SCRATCH/target.diff" | head -n 30
        fi
}
# in_target PID CMD...: run CMD in the target's namespaces (user namespace too, if it has one).
in_target() {
        local pid=$1
        shift
        if [[ $(readlink /proc/$pid/ns/user) != "$(readlink /proc/self/ns/user)" ]]; then
                nsenter -t "$pid" -U -m -- "$@"
        else
                nsenter -t "$pid" -m -- "$@"
        fi
}
# ns_status PID: status --json=short of the target for $R.
ns_status() {
        "$SYSEXT_IDMAP" --root="$R" --namespace-of="$1" --json=short status
}
ns_merged_exts() {      # ns_merged_exts PID HIERARCHY
        local j
        j=$(ns_status "$1") || { echo "<status failed>"; return 0; }
        json_get "$j" "(lambda h: ','.join(h['extensions']) if h['merged'] else '-')([h for h in j if h['hierarchy'] == '$2'][0])"
}

# A root with a squashfs image (nx.raw) and a directory image (nd), each with a root-owned file
# and one owned by 1000 (usr/share/ids-NAME/u1000).
R=$SCRATCH/root
make_root "$R"
for n in nx nd; do
        t=$SCRATCH/tree-$n
        make_ext_tree "$t" "$n"
        mkdir -p "$t/usr/share/ids-$n"
        echo x >"$t/usr/share/ids-$n/u1000"
        chown -R 0:0 "$t"
        chown 1000:1000 "$t/usr/share/ids-$n/u1000"
        if [[ $n == nx ]]; then
                mksquashfs "$t" "$R/var/lib/extensions/nx.raw" -noappend -quiet -no-progress >/dev/null
        else
                mv "$t" "$R/var/lib/extensions/nd"
        fi
done
# A second squashfs image, added before the refresh.
make_ext_squashfs "$SCRATCH/ny.raw" ny

wait_loops_settled
snapshot_state "$SCRATCH/host.before"
host_mounts >"$SCRATCH/host.mounts"

# ---------------------------------------------------------------------------------------------
log "target with a user namespace of its own (0 -> 100000)"
start_target_userns
P=$TARGET
assert_eq "$(awk '{ print $1, $2, $3 }' /proc/$P/uid_map)" "0 100000 65536" "target uid_map"
target_state "$P" >"$SCRATCH/target.before"

assert_ok sx --root="$R" --namespace-of="$P" --no-reload merge
assert_host_mounts_unchanged "$SCRATCH/host.mounts" "merge --namespace-of (userns target): our side"
[[ ! -e $R/usr/bin/nx-hello ]] && pass "nx-hello not visible on our side" || fail "nx-hello visible on our side"
for n in nx nd; do
        assert_eq "$(in_target "$P" stat -c %u:%g "$R/usr/bin/$n-hello" 2>&1)" 0:0 "$n: root-owned file inside the target"
        assert_eq "$(in_target "$P" stat -c %u:%g "$R/usr/share/ids-$n/u1000" 2>&1)" 1000:1000 "$n: 1000-owned file inside the target"
        assert_eq "$(in_target "$P" stat -c %u:%g "$R/opt/$n/data" 2>&1)" 0:0 "$n: root-owned /opt file inside the target"
        assert_eq "$(stat -c %u:%g "/proc/$P/root$R/usr/bin/$n-hello" 2>&1)" 100000:100000 "$n: root-owned file seen from the host via /proc/P/root"
        assert_eq "$(stat -c %u:%g "/proc/$P/root$R/usr/share/ids-$n/u1000" 2>&1)" 101000:101000 "$n: 1000-owned file seen from the host via /proc/P/root"
        assert_eq "$(in_target "$P" "$R/usr/bin/$n-hello" 2>&1)" "hello from $n" "$n-hello runs inside the target"
done
assert_eq "$(in_target "$P" cat "$R/usr/bin/base-marker" 2>&1 | tail -n 1)" 'echo base-os' "base /usr content still visible inside"

J=$(ns_status "$P")
assert_json_valid "$J" "status --namespace-of --json"
assert_eq "$(json_get "$J" "[h['merged'] for h in j]")" "[true, true]" "status --namespace-of: both hierarchies merged"
assert_eq "$(json_get "$J" "[h['extensions'] for h in j if h['hierarchy'] == '/usr'][0]")" '["nd", "nx"]' "status --namespace-of: extensions"
assert_eq "$(json_get "$J" "sorted(set([h['idmap'] for h in j] + [l['idmap'] for h in j for l in h['layers']]))")" "[\"pid:$P\"]" "status --namespace-of: idmap of hierarchies and layers"
run sx --root="$R" --namespace-of="$P" status
assert_contains "$LAST_STDOUT" "pid:$P" "status --namespace-of (table)"
assert_eq "$(merged_exts "$R" /usr)" - "status on our side: /usr not merged"

log "unmerge on our side does not reach into the target"
assert_ok sx --root="$R" --no-reload unmerge
assert_eq "$(ns_merged_exts "$P" /usr)" "nd,nx" "target still merged after our own unmerge"
assert_host_mounts_unchanged "$SCRATCH/host.mounts" "our unmerge: our side"

log "refresh --namespace-of with a new image"
cp "$SCRATCH/ny.raw" "$R/var/lib/extensions/ny.raw"
assert_ok sx --root="$R" --namespace-of="$P" --no-reload refresh
assert_eq "$(ns_merged_exts "$P" /usr)" "nd,nx,ny" "refresh --namespace-of: /usr extensions"
assert_eq "$(ns_merged_exts "$P" /opt)" "nd,nx,ny" "refresh --namespace-of: /opt extensions"
assert_eq "$(in_target "$P" "$R/usr/bin/ny-hello" 2>&1)" "hello from ny" "ny-hello runs inside the target after refresh"
assert_eq "$(stat -c %u "/proc/$P/root$R/usr/bin/ny-hello" 2>&1)" 100000 "ny: root-owned file seen from the host after refresh"
assert_eq "$(stat -c %u "/proc/$P/root$R/usr/bin/nx-hello" 2>&1)" 100000 "nx: still idmapped after refresh"
assert_host_mounts_unchanged "$SCRATCH/host.mounts" "refresh --namespace-of: our side"
# A refresh leaves at most one merge per hierarchy in the target.
assert_eq "$(awk -v p="$R/usr" '$5 == p' /proc/$P/mountinfo | wc -l)" 1 "one mount on \$R/usr in the target after refresh"

log "refusals with the target merged: nothing changes on either side"
target_state "$P" >"$SCRATCH/target.merged"
wait_loops_settled
snapshot_state "$SCRATCH/host.merged"
echo "not an image" >"$SCRATCH/garbage.raw"
for verb in merge refresh; do
        assert_fail sx --root="$R" --namespace-of="$P" --no-reload "$verb" "$SCRATCH/garbage.raw"
        assert_eq "$LAST_RC" 1 "$verb --namespace-of with a bad image: exit status"
        assert_one_stderr_line
        # merge refuses an already merged hierarchy first; refresh must refuse the image.
        [[ $verb == refresh ]] && assert_contains "$LAST_STDERR" garbage.raw "refresh with a bad image: stderr"
        assert_target_unchanged "$P" "$SCRATCH/target.merged" "$verb with a bad image"
        assert_state_unchanged "$SCRATCH/host.merged" "$verb with a bad image: our side"
done
assert_eq "$(ns_merged_exts "$P" /usr)" "nd,nx,ny" "target merge intact after refusals"

log "unmerge --namespace-of"
assert_ok sx --root="$R" --namespace-of="$P" --no-reload unmerge
assert_target_unchanged "$P" "$SCRATCH/target.before" "unmerge --namespace-of: back to before the merge"
assert_eq "$(ns_merged_exts "$P" /usr)" - "status --namespace-of after unmerge"
[[ ! -e /proc/$P/root$R/usr/bin/nx-hello ]] && pass "nx-hello gone in the target" || fail "nx-hello still in the target"
assert_no_scratch_loops "unmerge --namespace-of"
assert_state_unchanged "$SCRATCH/host.before" "unmerge --namespace-of: our side"
rm -f "$R/var/lib/extensions/ny.raw"

# ---------------------------------------------------------------------------------------------
log "target with a mount namespace but our user namespace: identity layers"
start_target_mntns
Q=$TARGET
target_state "$Q" >"$SCRATCH/targetq.before"
assert_ok sx --root="$R" --namespace-of="$Q" --no-reload merge
assert_eq "$(stat -c %u:%g "/proc/$Q/root$R/usr/bin/nx-hello" 2>&1)" 0:0 "nx: root-owned file in the target"
assert_eq "$(stat -c %u:%g "/proc/$Q/root$R/usr/share/ids-nx/u1000" 2>&1)" 1000:1000 "nx: 1000-owned file in the target"
assert_eq "$(stat -c %u:%g "/proc/$Q/root$R/usr/share/ids-nd/u1000" 2>&1)" 1000:1000 "nd: 1000-owned file in the target"
assert_eq "$(in_target "$Q" "$R/usr/bin/nx-hello" 2>&1)" "hello from nx" "nx-hello runs in the target"
J=$(ns_status "$Q")
assert_eq "$(json_get "$J" "sorted(set(l['idmap'] for h in j for l in h['layers']))")" '["identity"]' "status --namespace-of: identity layers"
assert_host_mounts_unchanged "$SCRATCH/host.mounts" "merge into a mount-namespace-only target: our side"
assert_ok sx --root="$R" --namespace-of="$Q" --idmap=b:1000:0:1 --no-reload refresh
assert_eq "$(stat -c %u "/proc/$Q/root$R/usr/share/ids-nx/u1000" 2>&1)" 0 "refresh --namespace-of --idmap=b:1000:0:1: 1000 -> 0"
J=$(ns_status "$Q")
assert_eq "$(json_get "$J" "[h['idmap'] for h in j if h['hierarchy'] == '/usr'][0]")" b:1000:0:1 "status --namespace-of: the --idmap given"
assert_ok sx --root="$R" --namespace-of="$Q" --no-reload unmerge
assert_target_unchanged "$Q" "$SCRATCH/targetq.before" "unmerge (mount-namespace-only target)"
assert_no_scratch_loops "unmerge (mount-namespace-only target)"

# ---------------------------------------------------------------------------------------------
log "compatibility follows the target's os-release; images are discovered on our side"
R2=$SCRATCH/root2
make_root "$R2"
rm -f "$R2/etc/os-release"
printf 'ID=debian\nVERSION_ID=12\n' >"$R2/etc/os-release"
printf 'ID=fedora\nVERSION_ID=40\n' >"$SCRATCH/os-release.fedora"
make_ext_squashfs "$R2/var/lib/extensions/deb.raw" deb ID=debian VERSION_ID=12
make_ext_squashfs "$SCRATCH/fed.raw" fed ID=fedora VERSION_ID=40
# The target sees a Fedora os-release and an empty /var/lib/extensions under $R2.
start_target_mntns "mount --bind '$SCRATCH/os-release.fedora' '$R2/etc/os-release' && mount -t tmpfs tmpfs '$R2/var/lib/extensions'"
F=$TARGET
assert_eq "$(sed -n 's/^ID=//p' "/proc/$F/root$R2/etc/os-release")" fedora "the target's os-release"
target_state "$F" >"$SCRATCH/targetf.before"
wait_loops_settled
snapshot_state "$SCRATCH/host.before2"
# Discovered on our side (the target's /var/lib/extensions is empty), judged against fedora:
# ignored with a message, as systemd-sysext does with incompatible discovered images.
run sx --root="$R2" --namespace-of="$F" --no-reload merge
assert_eq "$LAST_RC" 0 "a discovered debian image in a fedora target: exit status"
assert_contains "$LAST_STDERR" "ID=debian does not match host ID=fedora" "discovered debian image in a fedora target: stderr"
assert_target_unchanged "$F" "$SCRATCH/targetf.before" "discovered incompatible image"
# Given explicitly: refused.
run sx --root="$R2" --namespace-of="$F" --no-reload merge "$R2/var/lib/extensions/deb.raw"
assert_eq "$LAST_RC" 1 "an explicit debian image in a fedora target: exit status"
assert_one_stderr_line "deb"
assert_target_unchanged "$F" "$SCRATCH/targetf.before" "incompatible image"
assert_state_unchanged "$SCRATCH/host.before2" "incompatible image: our side"
run sx --root="$R2" --namespace-of="$F" --no-reload merge "$SCRATCH/fed.raw"
assert_eq "$LAST_RC" 0 "a fedora image in a fedora target (explicit image, on a debian host)"
assert_eq "$(in_target "$F" "$R2/usr/bin/fed-hello" 2>&1)" "hello from fed" "fed-hello runs in the target"
assert_ok sx --root="$R2" --namespace-of="$F" --no-reload unmerge
assert_target_unchanged "$F" "$SCRATCH/targetf.before" "unmerge of the fedora image"
run sx --root="$R2" --no-reload merge "$SCRATCH/fed.raw"
assert_eq "$LAST_RC" 1 "the fedora image on our (debian) side: exit status"
assert_state_unchanged "$SCRATCH/host.before2" "fedora image refused on our side"

# ---------------------------------------------------------------------------------------------
log "refusals: process gone, our own mount namespace"
start_target_userns
P=$TARGET
target_state "$P" >"$SCRATCH/target.before"
wait_loops_settled
snapshot_state "$SCRATCH/host.before"
sleep 1000 &
SAME=$!
BG_PIDS="$BG_PIDS $SAME"
sleep 0 &
GONE=$!
wait "$GONE" || true
for verb in merge refresh unmerge status; do
        for pid in "$GONE" "$$" "$SAME"; do
                case $pid in
                        "$GONE") what="a process that is gone" ;;
                        "$$") what="our own PID" ;;
                        *) what="a process sharing our mount namespace" ;;
                esac
                run sx --root="$R" --namespace-of="$pid" --no-reload "$verb"
                assert_eq "$LAST_RC" 1 "$verb --namespace-of=<$what>: exit status"
                assert_one_stderr_line
                if [[ $pid != "$GONE" ]]; then
                        assert_contains "$LAST_STDERR" "shares our mount namespace" "$verb --namespace-of=<$what>: stderr"
                fi
        done
done
for bad in 0 -1 abc ""; do
        run sx --root="$R" --namespace-of="$bad" --no-reload merge
        assert_eq "$LAST_RC" 1 "merge --namespace-of='$bad': exit status"
        assert_one_stderr_line
done
assert_state_unchanged "$SCRATCH/host.before" "refusals: our side"
assert_target_unchanged "$P" "$SCRATCH/target.before" "refusals: an unrelated target"
run sx --root="$R" --namespace-of="$P" --no-reload merge "$SCRATCH/garbage.raw"
assert_eq "$LAST_RC" 1 "merge --namespace-of with a bad image on an unmerged target: exit status"
assert_one_stderr_line garbage.raw
assert_target_unchanged "$P" "$SCRATCH/target.before" "bad image on an unmerged target"
assert_no_scratch_loops "after the refusals"
assert_state_unchanged "$SCRATCH/host.before" "bad image on an unmerged target: our side"

finish
