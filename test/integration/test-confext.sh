#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# confext (issue 13, point 7): the same engine for /etc, selected by the invocation name
# confext-idmap or by --class=confext. Over a scratch root: discovery in confext's search dirs
# (not sysext's), etc/extension-release.d with CONFEXT_SCOPE/CONFEXT_LEVEL, the overlay on /etc
# nosuid,nodev,noexec (a script in it cannot be executed), the marker dir .systemd-confext with
# its "confexts" list, status/list in confext mode, refresh and unmerge; sysext leaves /etc alone.
# Side by side with systemd 262's confext when /tmp/aptx has it.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
# systemd 262 unpacked (spec13), kept open across the private /tmp of the namespace.
if [[ -z ${APTX_FD:-} && -d /tmp/aptx/src/x ]]; then
        exec {APTX_FD}</tmp/aptx/src/x
        export APTX_FD
fi
enter_private_ns "$@"
require_binary
require_cmd python3 mkfs.erofs
setup_merge_scratch

R=$SCRATCH/root
make_root "$R"
echo host >"$R/etc/hostonly"
mkdir -p "$R/run/confexts" "$R/var/lib/confexts" "$R/usr/lib/confexts" "$R/usr/local/lib/confexts"

# make_confext_tree DIR NAME [extension-release lines...]: /etc content and a script.
make_confext_tree() {
        local d=$1 name=$2
        shift 2
        (($# > 0)) || set -- ID=debian VERSION_ID=12
        mkdir -p "$d/etc/extension-release.d" "$d/etc/$name"
        printf '%s\n' "$@" >"$d/etc/extension-release.d/extension-release.$name"
        echo "$name conf" >"$d/etc/$name/conf"
        printf '#!/bin/sh\necho run\n' >"$d/etc/$name/script"
        chmod 0755 "$d/etc/$name/script"
}

# A confext-idmap for invocation by name: what meson installs as a symlink.
mkdir -p "$SCRATCH/bin"
ln -s "$SYSEXT_IDMAP" "$SCRATCH/bin/confext-idmap"
CX=$SCRATCH/bin/confext-idmap

make_confext_tree "$R/var/lib/confexts/c1" c1
make_confext_tree "$R/usr/lib/confexts/c2" c2 ID=debian CONFEXT_LEVEL=7 CONFEXT_SCOPE=system
src=$(mktemp -d "$SCRATCH/src.XXXXXX")
make_confext_tree "$src" c3
mkfs.erofs --quiet "$R/run/confexts/c3.raw" "$src" >/dev/null
# Not ours to find: a confext in a sysext search dir, a sysext in a confext dir.
make_confext_tree "$R/var/lib/extensions/wrongdir" wrongdir
make_ext_dir "$R/var/lib/confexts/sx" sx
# Incompatible: another scope, another level.
make_confext_tree "$R/var/lib/confexts/inc1" inc1 ID=debian VERSION_ID=12 CONFEXT_SCOPE=initrd
printf 'ID=debian\nVERSION_ID=12\nCONFEXT_LEVEL=7\n' >"$R/usr/lib/os-release"
make_confext_tree "$R/var/lib/confexts/inc2" inc2 ID=debian CONFEXT_LEVEL=8

log "list in confext mode"
assert_ok "$CX" --root="$R" --json=short list
names=$(json_get "$LAST_STDOUT" "' '.join(sorted(e['name'] for e in j))")
assert_eq "$names" "c1 c2 c3 inc1 inc2 sx" "confext list: the confext search dirs only"
assert_ok "$SYSEXT_IDMAP" --class=confext --root="$R" --json=short list
assert_eq "$(json_get "$LAST_STDOUT" "' '.join(sorted(e['name'] for e in j))")" "$names" "--class=confext lists the same"
cp "$R/run/confexts/c3.raw" "$R/run/confexts/c4.confext.raw"
assert_ok "$CX" --root="$R" --json=short list
assert_eq "$(json_get "$LAST_STDOUT" "[e['name'] for e in j if e['path'].endswith('c4.confext.raw')][0]")" c4 "NAME.confext.raw is named NAME"
rm "$R/run/confexts/c4.confext.raw"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
assert_eq "$(json_get "$LAST_STDOUT" "' '.join(sorted(e['name'] for e in j))")" "wrongdir" "sysext list: not the confexts"

log "a sysext is no confext: its release file is in the wrong place"
assert_fail "$CX" --root="$R" merge "$R/var/lib/confexts/sx"
assert_one_stderr_line "no /etc/extension-release.d/extension-release.sx in image"
rm -rf "$R/var/lib/confexts/sx"

log "merge"
snapshot_state "$SCRATCH/before"
assert_ok "$CX" --root="$R" merge
assert_contains "$LAST_STDERR" "inc1" "the initrd-scoped confext is left out"
assert_contains "$LAST_STDERR" "CONFEXT_SCOPE=initrd" "… naming CONFEXT_SCOPE"
assert_contains "$LAST_STDERR" "CONFEXT_LEVEL=8 does not match host CONFEXT_LEVEL=7" "the other level is left out"
for n in c1 c2 c3; do
        assert_eq "$(cat "$R/etc/$n/conf" 2>&1)" "$n conf" "/etc/$n/conf from the confext"
done
assert_eq "$(cat "$R/etc/hostonly")" host "the host's /etc stays visible below"
assert_eq "$(cat "$R/etc/.systemd-confext/confexts" 2>&1 | tr '\n' ' ')" "c1 c2 c3 " ".systemd-confext/confexts lists the merge"
[[ -e $R/etc/.systemd-sysext ]] && fail "a .systemd-sysext marker in /etc" || pass "no .systemd-sysext marker in /etc"
dev=$(cat "$R/etc/.systemd-confext/dev" 2>&1 || true)
assert_eq "$dev" "$(stat -c '%Hd:%Ld' "$R/etc")" ".systemd-confext/dev is the overlay's device"
opts=$(findmnt -n -o OPTIONS --mountpoint "$R/etc" || true)
for o in ro nosuid nodev noexec; do
        assert_contains ",$opts," ",$o," "/etc overlay option $o"
done
assert_eq "$(findmnt -n -o SOURCE --mountpoint "$R/etc" || true)" confext "the /etc overlay's source (as systemd-confext's)"
assert_eq "$(findmnt -n -o SOURCE --mountpoint "$R/usr" || echo none)" none "no /usr overlay of a confext"
if "$R/etc/c1/script" >/dev/null 2>&1; then
        fail "a script in the merged /etc could be executed"
else
        pass "a script in the merged /etc cannot be executed (noexec)"
fi
[[ -z $(mounts_below "$R/usr") && -z $(mounts_below "$R/opt") ]] && pass "/usr and /opt untouched" ||
        fail "confext mounted something on /usr or /opt"

log "--noexec=no lifts the confext default (systemd-confext(8))"
assert_ok "$CX" --root="$R" --no-reload --noexec=no --always-refresh refresh
opts=$(findmnt -n -o OPTIONS --mountpoint "$R/etc" || true)
assert_not_contains ",$opts," ",noexec," "/etc overlay without noexec after --noexec=no"
assert_contains ",$opts," ",nosuid," "/etc overlay still nosuid after --noexec=no"
assert_ok "$CX" --root="$R" --no-reload --noexec=yes --always-refresh refresh
opts=$(findmnt -n -o OPTIONS --mountpoint "$R/etc" || true)
assert_contains ",$opts," ",noexec," "/etc overlay noexec again"

log "status"
assert_ok "$CX" --root="$R" --json=short status
assert_eq "$(json_get "$LAST_STDOUT" "' '.join(h['hierarchy'] for h in j)")" "/etc" "confext status: /etc only"
assert_eq "$(json_get "$LAST_STDOUT" "','.join(j[0]['extensions'])")" "c1,c2,c3" "confext status: the merged confexts"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short status
assert_not_contains "$LAST_STDOUT" '"/etc"' "sysext status does not show /etc"
assert_fail "$CX" --root="$R" merge
assert_contains "$LAST_STDERR" "already merged" "merging twice is refused"

log "refresh"
rm -rf "$R/var/lib/confexts/c1"
assert_ok "$CX" --root="$R" refresh
assert_eq "$(cat "$R/etc/.systemd-confext/confexts" | tr '\n' ' ')" "c2 c3 " "refresh: c1 gone"
[[ -e $R/etc/c1 ]] && fail "refresh: /etc/c1 still there" || pass "refresh: /etc/c1 gone"

log "unmerge"
assert_ok "$CX" --root="$R" unmerge
[[ -e $R/etc/.systemd-confext || -e $R/etc/c2 ]] && fail "unmerge left the confexts in /etc" || pass "unmerge: /etc is the host's again"
assert_eq "$(cat "$R/etc/hostonly")" host "unmerge: the host's /etc"
wait_loops_settled
assert_state_unchanged "$SCRATCH/before" "merge, refresh, unmerge"

log "SYSTEMD_CONFEXT_HIERARCHIES, CLI"
mkdir -p "$R/srv/conf"
assert_ok env SYSTEMD_CONFEXT_HIERARCHIES=/srv/conf:/etc SYSTEMD_SYSEXT_HIERARCHIES=/opt "$CX" --root="$R" --json=short status
assert_eq "$(json_get "$LAST_STDOUT" "' '.join(sorted(h['hierarchy'] for h in j))")" "/etc /srv/conf" \
        "confext reads SYSTEMD_CONFEXT_HIERARCHIES, not SYSTEMD_SYSEXT_HIERARCHIES"
assert_fail "$SYSEXT_IDMAP" --class=frob status
assert_one_stderr_line "unknown image class 'frob'"
assert_ok "$CX" --help
assert_contains "$LAST_STDOUT" "confext-idmap [OPTIONS...]" "--help names the invocation"
assert_contains "$LAST_STDOUT" "configuration extension images into /etc/" "--help says what confext does"
assert_fail "$CX" run -- true
assert_one_stderr_line "only system extensions"

log "confext-idmap.service"
UNIT=$(cd "$(dirname "$SYSEXT_IDMAP")/../.." && pwd)/units/confext-idmap.service
if [[ -f $UNIT ]] && command -v systemd-analyze >/dev/null; then
        assert_contains "$(grep '^ExecStart=' "$UNIT")" "/confext-idmap merge" "the unit runs confext-idmap merge"
        assert_contains "$(grep '^Conflicts=' "$UNIT" | tr '\n' ' ')" "systemd-confext.service" "the unit conflicts with systemd-confext.service"
        assert_contains "$(grep '^After=' "$(dirname "$UNIT")/sysext-idmap.service" | tr '\n' ' ')" "confext-idmap.service" \
                "sysext-idmap.service is ordered after it (as systemd-sysext after systemd-confext)"
        mkdir -p "$SCRATCH/verify"
        sed "s|^\(Exec[A-Za-z]*=\)[^ ]*|\1$CX|" "$UNIT" >"$SCRATCH/verify/confext-idmap.service"
        run systemd-analyze verify --man=no "$SCRATCH/verify/confext-idmap.service"
        assert_eq "$LAST_RC:$LAST_STDOUT$LAST_STDERR" "0:" "systemd-analyze verify confext-idmap.service"
else
        log "no generated unit or systemd-analyze, unit checks skipped"
fi

# systemd 262's confext side by side (spec13 §6): the same layout and markers.
SD=/proc/$$/fd/${APTX_FD:-none}
if [[ -x $SD/usr/bin/systemd-sysext && -d $SD/usr/lib/x86_64-linux-gnu/systemd ]]; then
        log "systemd-confext 262 side by side"
        make_ns_shared_for_systemd_sysext
        mount --bind "$R" "$R" && mount --make-rshared "$R"
        ln -sf "$SD/usr/bin/systemd-sysext" "$SCRATCH/bin/systemd-confext"
        run env LD_LIBRARY_PATH="$SD/usr/lib/x86_64-linux-gnu/systemd" "$SCRATCH/bin/systemd-confext" --root="$R" merge
        if ((LAST_RC == 0)); then
                sd_list=$(tr '\n' ' ' <"$R/etc/.systemd-confext/confexts")
                sd_opts=$(findmnt -n -o OPTIONS --mountpoint "$R/etc" || true)
                assert_eq "$sd_list" "c2 c3 " "systemd-confext merges the same confexts"
                assert_ok "$CX" --root="$R" --json=short status
                assert_eq "$(json_get "$LAST_STDOUT" "','.join(j[0]['extensions'])")" "c2,c3" "our status reads systemd-confext's merge"
                assert_contains ",$sd_opts," ",noexec," "systemd-confext's /etc is noexec as ours"
                run env LD_LIBRARY_PATH="$SD/usr/lib/x86_64-linux-gnu/systemd" "$SCRATCH/bin/systemd-confext" --root="$R" unmerge
        else
                log "systemd-confext 262 did not merge here (exit $LAST_RC): $(head -n 1 <<<"$LAST_STDERR")"
        fi
fi

log "a confext DDI with root and usr partitions: /etc from the root partition"
if command -v systemd-repart >/dev/null && command -v mksquashfs >/dev/null; then
        "$CX" --root="$R" unmerge >/dev/null 2>&1 || true
        d=$(mktemp -d "$SCRATCH/cddi.XXXXXX")
        make_confext_tree "$d/src" cddi
        mkdir -p "$d/src/usr/share/cddi" "$d/defs"
        echo usr >"$d/src/usr/share/cddi/data"
        printf '[Partition]\nType=root\nFormat=squashfs\nCopyFiles=%s/etc:/etc\n' "$d/src" >"$d/defs/10-root.conf"
        printf '[Partition]\nType=usr\nFormat=squashfs\nCopyFiles=%s/usr:/\n' "$d/src" >"$d/defs/20-usr.conf"
        if unshare --mount --propagation private systemd-repart --empty=create --size=auto --dry-run=no \
                        --definitions="$d/defs" "$R/var/lib/confexts/cddi.raw" >"$d/repart.log" 2>&1; then
                wait_loops_settled
                assert_ok "$CX" --root="$R" merge
                assert_eq "$(cat "$R/etc/cddi/conf" 2>&1)" "cddi conf" "default policy (usr unused): /etc/cddi/conf"
                assert_ok "$CX" --root="$R" unmerge
                # A policy that uses the usr partition too: the extension-release is still the root's.
                assert_ok "$CX" --root="$R" --image-policy='root=unprotected:usr=unprotected' merge
                assert_eq "$(cat "$R/etc/cddi/conf" 2>&1)" "cddi conf" "usr partition used: /etc/cddi/conf"
                assert_ok "$CX" --root="$R" unmerge
        else
                cat "$d/repart.log" >&2
                fail "systemd-repart could not build the confext DDI"
        fi
        rm -f "$R/var/lib/confexts/cddi.raw"
else
        log "no systemd-repart/mksquashfs: confext DDI not tried"
fi

finish
