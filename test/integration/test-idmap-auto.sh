#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# --idmap=auto: three images in one merge, each mapped by the owner of its root directory: a
# foreign-owned directory (foreign), a squashfs an unprivileged builder made (uid/gid 1000: its ids
# appear as root's), a root-owned directory (identity). Ownership through the merge with stat, the
# layers' mappings in status, the administrator's NAME.idmap override (root-controlled honoured;
# group-writable, not root's, a bad spec refused naming the file, nothing changed), and where auto
# is refused (--namespace-of= another user namespace, run --user).
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup unshare
setup_merge_scratch
umask 022

# The override is honoured only if root alone controls it, from / down: /var/tmp (the usual
# scratch place) is world-writable, so this test's scratch lives in the namespace's own /run
# (a 0755 root tmpfs, enter_private_ns). lib.sh's cleanup removes it the same way.
rmdir "$SCRATCH"
SCRATCH=$(mktemp -d "/run/sysext-idmap-$TEST_NAME.XXXXXX")
chmod 0755 "$SCRATCH"
export SCRATCH

R=$SCRATCH/root
EXT=$R/var/lib/extensions
make_root "$R"

# fx: a directory in the foreign range, with one file of foreign uid/gid 5
make_ext_dir "$EXT/fx" fx
echo five >"$EXT/fx/usr/lib/fx-five"
chown 5:5 "$EXT/fx/usr/lib/fx-five"
chown_tree_foreign "$EXT/fx"
# ux: a squashfs whose every file belongs to the builder 1000:1000, with a setuid binary
src=$(mktemp -d "$SCRATCH/ux.XXXXXX")
chmod 0755 "$src"
make_ext_tree "$src" ux
cp "$src/usr/bin/ux-hello" "$src/usr/bin/ux-suid"
chown -R 1000:1000 "$src"
chmod 4755 "$src/usr/bin/ux-suid"
mksquashfs "$src" "$EXT/ux.raw" -noappend -quiet -no-progress >/dev/null
# rx: a root-owned directory with one file of uid 1000, which stays 1000
make_ext_dir "$EXT/rx" rx
echo thousand >"$EXT/rx/usr/lib/rx-1000"
chown 1000:1000 "$EXT/rx/usr/lib/rx-1000"

assert_owner "$EXT/fx" "$FOREIGN_UID_BASE:$FOREIGN_UID_BASE" "fx on disk: foreign range"
wait_loops_settled
snapshot_state "$SCRATCH/state.before"

layer_idmap() {         # layer_idmap NAME: the idmap status --json records for the /usr layer NAME
        json_get "$(status_json "$R")" "[l['idmap'] for h in j if h['hierarchy'] == '/usr' for l in h['layers'] if l['name'] == '$1'][0]"
}

log "one --idmap=auto merge with a foreign, a builder's and a root-owned image"
assert_ok sx --root="$R" --idmap=auto --no-reload merge
assert_owner "$R/usr/bin/fx-hello" 0:0 "fx (foreign): base+0 appears as root"
assert_owner "$R/usr/lib/fx-five" 5:5 "fx (foreign): base+5 appears as 5"
assert_owner "$R/opt/fx/data" 0:0 "fx (foreign): /opt file"
assert_owner "$R/usr/bin/ux-hello" 0:0 "ux (builder 1000): 1000 appears as root"
assert_owner "$R/opt/ux/data" 0:0 "ux (builder 1000): /opt file"
assert_owner "$R/usr/bin/ux-suid" 0:0 "ux (builder 1000): setuid binary appears root-owned"
assert_eq "$(stat -c %a "$R/usr/bin/ux-suid")" 4755 "ux: setuid bit kept"
assert_owner "$R/usr/bin/rx-hello" 0:0 "rx (root): root stays root"
assert_owner "$R/usr/lib/rx-1000" 1000:1000 "rx (root): identity, 1000 stays 1000"
assert_owner "$R/usr/bin/base-marker" 0:0 "the base layer is not idmapped"
assert_owner "$EXT/rx/usr/lib/rx-1000" 1000:1000 "rx on disk unchanged"
assert_eq "$("$R/usr/bin/ux-hello" 2>&1)" "hello from ux" "ux-hello runs"
opts=$(awk -v m="$R/usr" '$5 == m { print $6 }' /proc/self/mountinfo | tail -n 1)
assert_not_contains "$opts" "nosuid" "auto overlay keeps setuid (trusted system images)"
J=$(status_json "$R")
assert_eq "$(json_get "$J" "[h['idmap'] for h in j if h['hierarchy'] == '/usr'][0]")" auto "status: the merge's spec is auto"
assert_eq "$(layer_idmap fx)" foreign "status: fx layer foreign"
assert_eq "$(layer_idmap ux)" "u:1000:0:65536,g:1000:0:65536" "status: ux layer the builder's range"
assert_eq "$(layer_idmap rx)" identity "status: rx layer identity"
assert_ok sx --root="$R" status
assert_contains "$LAST_STDOUT" "auto" "status table shows auto"
assert_ok sx --root="$R" --no-reload unmerge
assert_no_scratch_loops "after unmerge"
assert_state_unchanged "$SCRATCH/state.before" "after auto merge + unmerge"

log "NAME.idmap beside the image: the administrator's mapping wins"
printf 'identity\n' >"$EXT/ux.idmap"
printf 'b:%s:0:65536\n' "$FOREIGN_UID_BASE" >"$EXT/rx.idmap"
assert_ok sx --root="$R" --idmap=auto --no-reload merge
assert_owner "$R/usr/bin/ux-hello" 1000:1000 "ux.idmap=identity: 1000 stays 1000"
assert_owner "$R/usr/bin/rx-hello" 65534:65534 "rx.idmap=foreign range: root-owned files appear as nobody"
assert_owner "$R/usr/bin/fx-hello" 0:0 "fx without override: still foreign"
assert_eq "$(layer_idmap ux)" identity "status: ux layer from its override"
# the same mapping as fx's, written differently: one user namespace for both, recorded once
assert_eq "$(layer_idmap rx)" foreign "status: rx layer from its override (shares fx's mapping)"
assert_ok sx --root="$R" --no-reload unmerge
rm -f "$EXT/rx.idmap"
# Without auto an override means nothing: --idmap= given is the mapping of every layer.
assert_ok sx --root="$R" --idmap=identity --no-reload merge
assert_owner "$R/usr/bin/ux-hello" 1000:1000 "--idmap=identity: overrides not consulted"
assert_ok sx --root="$R" --no-reload unmerge
assert_state_unchanged "$SCRATCH/state.before" "after override merges"

# refused OVERRIDE-SETUP WANT WHAT: a merge with this override fails naming ux.idmap, changes nothing.
refused() {
        local want=$1 what=$2
        assert_fail sx --root="$R" --idmap=auto --no-reload merge
        assert_one_stderr_line
        assert_contains "$LAST_STDERR" "$EXT/ux.idmap" "$what: the error names the override"
        assert_contains "$LAST_STDERR" "$want" "$what: the error says why"
        assert_no_scratch_loops "$what: no loop device left"
        assert_state_unchanged "$SCRATCH/state.before" "$what: refused"
}
chmod 0666 "$EXT/ux.idmap"
refused "writable by group or others" "user-writable override"
chmod 0644 "$EXT/ux.idmap"
chown 1000:1000 "$EXT/ux.idmap"
refused "not owned by root" "override owned by uid 1000"
chown 0:0 "$EXT/ux.idmap"
printf 'b:1000:0\n' >"$EXT/ux.idmap"
refused "not of the form" "bad spec in the override"
printf 'user:nobody\n' >"$EXT/ux.idmap"
refused "cannot be an override" "user: in the override"
rm -f "$EXT/ux.idmap"
ln -s /etc/hostname "$EXT/ux.idmap"
refused "symlink" "override as a symlink"
rm -f "$EXT/ux.idmap"

log "where auto is refused"
start_userns -m --propagation private
assert_fail sx --root="$R" --idmap=auto --namespace-of="$STARTED_PID" --no-reload merge
assert_contains "$LAST_STDERR" "--idmap=auto cannot be used with --namespace-of" "--namespace-of= a process in another user namespace: refused"
assert_fail sx --idmap=auto run --user=nobody --image="$EXT/ux.raw" -- /bin/true
assert_contains "$LAST_STDERR" "cannot be combined with --idmap" "run --user: refused"
assert_fail sx --idmap=auto,b:0:0:1 status
assert_contains "$LAST_STDERR" "'auto' cannot be combined" "auto stands alone"
assert_state_unchanged "$SCRATCH/state.before" "after the refusals"

log "run --private-users=no with auto maps the command's layers the same way"
assert_ok sx --idmap=auto run --image="$EXT/ux.raw" --image="$EXT/fx" -- stat -c %u:%g /usr/bin/ux-suid /usr/bin/fx-hello
assert_eq "$(tr '\n' ' ' <<<"$LAST_STDOUT")" "0:0 0:0 " "run: both layers root-owned"
finish
