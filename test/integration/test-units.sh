#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The systemd units: `systemd-analyze verify` accepts sysext-idmap.service and an instance of the
# example template (copies with ExecStart pointing to the built binary); the service is ordered
# like systemd-sysext.service; `meson install` puts the service in systemd's unit directory and
# the example under share/doc; every Exec*= line of the service, and the example's, runs with our
# binary against a scratch root (merge, refresh, unmerge for real, in a private namespace).
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd systemd-analyze meson python3 mksquashfs losetup
setup_merge_scratch

BUILD_DIR=$(cd "$(dirname "$SYSEXT_IDMAP")/../.." && pwd)
UNIT_DIR=$BUILD_DIR/units
SERVICE=$UNIT_DIR/sysext-idmap.service
EXAMPLE=$UNIT_DIR/sysext-idmap-example@.service
[[ -f $SERVICE && -f $EXAMPLE ]] || skip "units not generated in $UNIT_DIR"
[[ -f $BUILD_DIR/meson-info/intro-buildoptions.json ]] || skip "no meson introspection data in $BUILD_DIR"

# Build options: prefix and bindir decide where ExecStart= points to.
opt() {
        python3 -c 'import json, sys
print([o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == sys.argv[2]][0])' \
                "$BUILD_DIR/meson-info/intro-buildoptions.json" "$1"
}
PREFIX=$(opt prefix)
BINDIR=$(opt bindir)
DATADIR=$(opt datadir)
[[ $BINDIR == /* ]] || BINDIR=$PREFIX/$BINDIR
[[ $DATADIR == /* ]] || DATADIR=$PREFIX/$DATADIR
INSTALLED_BIN=$BINDIR/sysext-idmap
log "prefix $PREFIX, binary installed as $INSTALLED_BIN"

# unit_values FILE KEY: the values of KEY= in FILE, one a line.
unit_values() {
        sed -n "s/^$2=//p" "$1"
}

# ---------------------------------------------------------------------------------------------
log "sysext-idmap.service: settings"
assert_eq "$(unit_values "$SERVICE" ExecStart)" "$INSTALLED_BIN merge" "ExecStart="
assert_eq "$(unit_values "$SERVICE" ExecReload)" "$INSTALLED_BIN refresh" "ExecReload="
assert_eq "$(unit_values "$SERVICE" ExecStop)" "$INSTALLED_BIN unmerge" "ExecStop="
assert_eq "$(unit_values "$SERVICE" ConditionCapability)" CAP_SYS_ADMIN "ConditionCapability="
assert_eq "$(unit_values "$SERVICE" Type)" oneshot "Type="
assert_eq "$(unit_values "$SERVICE" RemainAfterExit)" yes "RemainAfterExit="
assert_eq "$(unit_values "$SERVICE" DefaultDependencies)" no "DefaultDependencies="
assert_contains " $(unit_values "$SERVICE" Before | tr '\n' ' ') " " sysinit.target " "Before="
assert_contains " $(unit_values "$SERVICE" Before | tr '\n' ' ') " " shutdown.target " "Before="
assert_contains " $(unit_values "$SERVICE" After | tr '\n' ' ') " " local-fs.target " "After="
assert_contains " $(unit_values "$SERVICE" Conflicts | tr '\n' ' ') " " systemd-sysext.service " "Conflicts="
assert_contains " $(unit_values "$SERVICE" Conflicts | tr '\n' ' ') " " shutdown.target " "Conflicts="
assert_eq "$(unit_values "$SERVICE" WantedBy)" sysinit.target "WantedBy="
assert_contains "$(unit_values "$SERVICE" ConditionDirectoryNotEmpty)" "|/var/lib/extensions" "ConditionDirectoryNotEmpty="
if grep -q '@[a-z]*@' "$SERVICE" "$EXAMPLE"; then
        fail "unsubstituted @placeholders@ in the generated units"
else
        pass "no unsubstituted @placeholders@ in the generated units"
fi

log "sysext-idmap-example@.service: settings"
EXAMPLE_EXEC=$(unit_values "$EXAMPLE" ExecStart)
assert_eq "$EXAMPLE_EXEC" "$INSTALLED_BIN run --private-users=pick --image=/var/lib/extensions/%i.raw -- /usr/bin/%i" "example ExecStart="

# ---------------------------------------------------------------------------------------------
log "systemd-analyze verify --man=no (copies with ExecStart= pointing to the built binary)"
V=$SCRATCH/verify
mkdir -p "$V"
for f in "$SERVICE" "$EXAMPLE"; do
        sed "s|$INSTALLED_BIN|$SYSEXT_IDMAP|g" "$f" >"$V/$(basename "$f")"
done
[[ -x /usr/bin/true ]] || skip "no /usr/bin/true for the example instance"
for u in sysext-idmap.service sysext-idmap-example@true.service; do
        run systemd-analyze verify --man=no "$V/$u"
        assert_eq "$LAST_RC" 0 "systemd-analyze verify $u: exit status"
        assert_eq "$LAST_STDOUT$LAST_STDERR" "" "systemd-analyze verify $u: no warnings"
done
# The check can fail: a unit whose ExecStart= is not there is refused.
sed "s|$INSTALLED_BIN|$SCRATCH/no-such-binary|g" "$SERVICE" >"$V/broken.service"
run systemd-analyze verify --man=no "$V/broken.service"
((LAST_RC != 0)) && pass "systemd-analyze verify refuses a unit with a missing binary" ||
        fail "systemd-analyze verify accepted a unit with a missing binary"

# ---------------------------------------------------------------------------------------------
log "meson install --destdir"
DEST=$SCRATCH/dest
if command -v pkg-config >/dev/null && pkg-config --exists systemd; then
        UNITDIR_WANT=$(pkg-config --variable=systemdsystemunitdir systemd)
else
        UNITDIR_WANT=$PREFIX/lib/systemd/system
fi
run meson install -C "$BUILD_DIR" --no-rebuild --quiet --destdir "$DEST"
assert_eq "$LAST_RC" 0 "meson install --destdir: exit status"
((LAST_RC == 0)) || printf '%s\n' "$LAST_STDERR" | tail -n 20 | sed 's/^/    /'
if [[ -f $DEST$UNITDIR_WANT/sysext-idmap.service ]]; then
        pass "sysext-idmap.service installed in $UNITDIR_WANT"
        assert_eq "$(cmp "$SERVICE" "$DEST$UNITDIR_WANT/sysext-idmap.service" 2>&1 && echo same)" same "installed service = generated service"
else
        fail "sysext-idmap.service not in \$DEST$UNITDIR_WANT:"
        (cd "$DEST" && find . -name '*.service') | sed 's/^/    /'
fi
EXDIR=$DATADIR/doc/sysext-idmap/examples
if [[ -f $DEST$EXDIR/sysext-idmap-example@.service ]]; then
        pass "example installed in $EXDIR"
else
        fail "example not in \$DEST$EXDIR:"
        (cd "$DEST" && find . -name '*.service') | sed 's/^/    /'
fi
[[ ! -e $DEST$UNITDIR_WANT/sysext-idmap-example@.service ]] &&
        pass "the example is not installed as a unit" || fail "the example is installed in the unit directory"
PRESET=$(find "$DEST" -name 90-sysext-idmap.preset | head -n 1)
if [[ -n $PRESET ]]; then
        assert_eq "$(grep -v '^#' "$PRESET" | sed '/^$/d')" \
                $'enable sysext-idmap.service\ndisable systemd-sysext.service\nenable confext-idmap.service\ndisable systemd-confext.service' \
                "preset enables ours and disables systemd-sysext.service and systemd-confext.service"
else
        fail "90-sysext-idmap.preset not installed"
fi
[[ -x $DEST$INSTALLED_BIN ]] && pass "binary installed where ExecStart= points ($INSTALLED_BIN)" ||
        fail "no executable at \$DEST$INSTALLED_BIN"

# ---------------------------------------------------------------------------------------------
log "the service's command lines, run with our binary against a scratch root"
R=$SCRATCH/root
make_root "$R"
make_ext_squashfs "$R/var/lib/extensions/ua.raw" ua
make_ext_squashfs "$SCRATCH/ub.raw" ub
wait_loops_settled
snapshot_state "$SCRATCH/state.before"

# exec_line KEY: the service's KEY= command line, run as "$SYSEXT_IDMAP --root=$R ARGS...".
exec_line() {
        local key=$1 line
        line=$(unit_values "$SERVICE" "$key")
        line=${line#[-@:+!]}
        local -a argv
        read -r -a argv <<<"$line"
        if [[ ${argv[0]} != "$INSTALLED_BIN" ]]; then
                fail "$key=: runs ${argv[0]}, not $INSTALLED_BIN"
                return
        fi
        log "$key=${argv[*]:1}"
        run "$SYSEXT_IDMAP" --root="$R" "${argv[@]:1}"
        assert_eq "$LAST_RC" 0 "$key= (sysext-idmap --root=\$R ${argv[*]:1}): exit status"
        ((LAST_RC == 0)) || printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /'
}

exec_line ExecStart
assert_eq "$(merged_exts "$R" /usr)" ua "after ExecStart=: /usr"
assert_eq "$(merged_exts "$R" /opt)" ua "after ExecStart=: /opt"
assert_eq "$("$R/usr/bin/ua-hello" 2>&1)" "hello from ua" "after ExecStart=: ua-hello runs"
assert_eq "$("$R/usr/bin/base-marker" 2>&1)" base-os "after ExecStart=: base /usr content"
cp "$SCRATCH/ub.raw" "$R/var/lib/extensions/ub.raw"
exec_line ExecReload
assert_eq "$(merged_exts "$R" /usr)" ua,ub "after ExecReload=: /usr"
assert_eq "$("$R/usr/bin/ub-hello" 2>&1)" "hello from ub" "after ExecReload=: ub-hello runs"
exec_line ExecStop
assert_eq "$(merged_exts "$R" /usr)" - "after ExecStop=: /usr"
assert_eq "$(merged_exts "$R" /opt)" - "after ExecStop=: /opt"
assert_no_scratch_loops "after ExecStop="
assert_state_unchanged "$SCRATCH/state.before" "ExecStart=, ExecReload=, ExecStop="
# The stop command of a service that merged nothing: unmerge of an unmerged root succeeds.
exec_line ExecStop

log "the example's command line for the instance 'true' (image path moved to the scratch dir)"
mkdir -p "$SCRATCH/ext"
make_ext_squashfs "$SCRATCH/ext/true.raw" true
line=${EXAMPLE_EXEC//%i/true}
line=${line//\/var\/lib\/extensions\//$SCRATCH/ext/}
read -r -a argv <<<"$line"
run "$SYSEXT_IDMAP" "${argv[@]:1}"
assert_eq "$LAST_RC" 0 "example ExecStart= with our binary: exit status of /usr/bin/true"
assert_contains "$LAST_STDERR" "Picked ids " "example ExecStart=: stderr"
run "$SYSEXT_IDMAP" "${argv[@]:1:4}" sh -c 'true-hello; stat -c %u /usr/bin/true-hello; exit 7'
assert_eq "$LAST_RC" 7 "example options with another command: exit status"
assert_eq "$LAST_STDOUT" $'hello from true\n0' "example options: the image is merged, idmapped to root inside"
assert_no_scratch_loops "after the example"
assert_state_unchanged "$SCRATCH/state.before" "example command line"

finish
