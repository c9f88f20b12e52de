#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# .v/ versioned directories (issue 13, point 8; systemd.v(7)), the layout systemd-sysupdate
# writes: NAME.v/ with directory variants and NAME.raw.v/ with erofs images, over a scratch root.
# The pick is the newest version for this architecture (a foreign one is ignored, +0 tries left
# sorts last), the image's name is NAME; list, merge, status, refresh (a newer version arrives,
# the picked one runs out of tries), unmerge; a confext in a .v directory; systemd 262's list of
# the same tree side by side when /tmp/aptx has it.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
if [[ -z ${APTX_FD:-} && -d /tmp/aptx/src/x ]]; then
        exec {APTX_FD}</tmp/aptx/src/x
        export APTX_FD
fi
enter_private_ns "$@"
require_binary
require_cmd python3 mkfs.erofs losetup
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
ARCH=$(uname -m)
case $ARCH in
        x86_64) NATIVE=x86-64 SECONDARY=x86 ;;
        aarch64) NATIVE=arm64 SECONDARY=arm ;;
        *) NATIVE=$ARCH SECONDARY= ;;
esac
FOREIGN=alpha

# vdir_entry DIR NAME ENTRY: a directory variant ENTRY of NAME, saying which one it is.
vdir_entry() {
        make_ext_dir "$1/$3" "$2" ID=debian VERSION_ID=12
        mkdir -p "$1/$3/usr/share/$2"
        echo "$3" >"$1/$3/usr/share/$2/which"
}
# vraw_entry DIR NAME FILE: an erofs image FILE of NAME, saying which one it is.
vraw_entry() {
        local src
        src=$(_ext_src "$2")
        mkdir -p "$src/usr/share/$2"
        echo "$3" >"$src/usr/share/$2/which"
        mkfs.erofs --quiet "$1/$3" "$src" >/dev/null
}

mkdir -p "$E/d.v" "$E/r.raw.v"
for v in d_1.0 d_2.0 "d_3.0+0" "d_9.0_$FOREIGN" "d_1.5_$NATIVE"; do
        vdir_entry "$E/d.v" d "$v"
done
for v in r_1.raw r_1.10.raw "r_1.9_$NATIVE.raw" "r_7_$FOREIGN.raw"; do
        vraw_entry "$E/r.raw.v" r "$v"
done
make_ext_dir "$E/plain" plain

log "list"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
L=$LAST_STDOUT
assert_eq "$(json_get "$L" "' '.join(e['name'] for e in j)")" "d plain r" "list: the images are named NAME"
assert_eq "$(json_get "$L" "[e['version'] for e in j if e['name'] == 'd'][0]")" "2.0" "d.v: newest usable version 2.0 (+0 last, $FOREIGN ignored)"
assert_eq "$(json_get "$L" "[e['path'] for e in j if e['name'] == 'd'][0]")" "$E/d.v/d_2.0" "d.v: path of the picked entry"
assert_eq "$(json_get "$L" "[e['version'] for e in j if e['name'] == 'r'][0]")" "1.10" "r.raw.v: 1.10 beats 1.9 (version order)"
assert_eq "$(json_get "$L" "[e['type'] for e in j if e['name'] == 'r'][0]")" "raw" "r.raw.v: a raw image"

log "merge"
snapshot_state "$SCRATCH/before"
assert_ok "$SYSEXT_IDMAP" --root="$R" merge
assert_eq "$(cat "$R/usr/share/d/which")" "d_2.0" "merged: d_2.0"
assert_eq "$(cat "$R/usr/share/r/which")" "r_1.10.raw" "merged: r_1.10.raw"
assert_eq "$(merged_exts "$R" /usr)" "d,plain,r" "status: names d, plain, r"

log "refresh: a newer version arrives, then runs out of tries"
vdir_entry "$E/d.v" d "d_2.1+3"
assert_ok "$SYSEXT_IDMAP" --root="$R" refresh
assert_eq "$(cat "$R/usr/share/d/which")" "d_2.1+3" "refresh picks the newer d_2.1+3"
mv "$E/d.v/d_2.1+3" "$E/d.v/d_2.1+0-3"
assert_ok "$SYSEXT_IDMAP" --root="$R" refresh
assert_eq "$(cat "$R/usr/share/d/which")" "d_2.0" "at +0 it sorts last: back to d_2.0"
if [[ -n $SECONDARY ]]; then
        vraw_entry "$E/r.raw.v" r "r_5_$SECONDARY.raw"
        assert_ok "$SYSEXT_IDMAP" --root="$R" refresh
        assert_eq "$(cat "$R/usr/share/r/which")" "r_5_$SECONDARY.raw" "the secondary architecture ($SECONDARY on $NATIVE) counts"
fi
log "refresh: only +0 left"
rm -rf "$E/d.v"/d_1.0 "$E/d.v"/d_2.0 "$E/d.v"/d_1.5_*
assert_ok "$SYSEXT_IDMAP" --root="$R" refresh
assert_contains "$(cat "$R/usr/share/d/which")" "+0" "with nothing better, an entry at +0 is used"
rm -rf "$E/d.v"/*
assert_ok "$SYSEXT_IDMAP" --root="$R" refresh
[[ -e $R/usr/share/d ]] && fail "an empty d.v still merged" || pass "an empty d.v is no image"
assert_eq "$(merged_exts "$R" /usr)" "plain,r" "status after the .v directory emptied"

log "unmerge"
assert_ok "$SYSEXT_IDMAP" --root="$R" unmerge
wait_loops_settled
assert_state_unchanged "$SCRATCH/before" "merge, refresh, unmerge"
assert_no_scratch_loops

log "an explicitly named .v directory"
assert_ok "$SYSEXT_IDMAP" --root="$R" merge "$E/r.raw.v"
assert_contains "$(cat "$R/usr/share/r/which")" "r_5_" "merge r.raw.v: its picked version"
assert_eq "$(merged_exts "$R" /usr)" "r" "merge r.raw.v: named r"
assert_ok "$SYSEXT_IDMAP" --root="$R" unmerge
mkdir -p "$SCRATCH/none.v"
assert_fail "$SYSEXT_IDMAP" --root="$R" merge "$SCRATCH/none.v"
assert_one_stderr_line "versioned directory without a version for this machine"

log "bad entries are not images, and not errors"
echo junk >"$E/junk.v"
mkdir -p "$E/x.raw.v" && mkdir -p "$E/x.raw.v/x_1.raw" && echo x >"$E/x.raw.v/x_2"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
assert_eq "$(json_get "$LAST_STDOUT" "' '.join(e['name'] for e in j)")" "plain r" "a .v file and a .raw.v without files are skipped"

log "a confext in a .v directory"
mkdir -p "$R/var/lib/confexts/c.v/c_1" "$R/var/lib/confexts/c.v/c_2/etc/extension-release.d"
printf "ID=debian\nVERSION_ID=12\n" >"$R/var/lib/confexts/c.v/c_2/etc/extension-release.d/extension-release.c"
echo two >"$R/var/lib/confexts/c.v/c_2/etc/c-which"
assert_ok "$SYSEXT_IDMAP" --class=confext --root="$R" merge
assert_eq "$(cat "$R/etc/c-which" 2>&1)" two "confext c.v/c_2 merged into /etc"
assert_ok "$SYSEXT_IDMAP" --class=confext --root="$R" unmerge

SD=/proc/$$/fd/${APTX_FD:-none}
if [[ -x $SD/usr/bin/systemd-sysext ]]; then
        log "systemd-sysext 262 side by side: list of the same layout"
        rm -rf "$E/junk.v" "$E/x.raw.v"
        for v in d_1.0 d_2.0 "d_3.0+0" "d_9.0_$FOREIGN"; do vdir_entry "$E/d.v" d "$v"; done
        run env LD_LIBRARY_PATH="$SD/usr/lib/x86_64-linux-gnu/systemd" "$SD/usr/bin/systemd-sysext" --root="$R" --json=short list
        if ((LAST_RC == 0)); then
                sd=$(json_get "$LAST_STDOUT" "' '.join(e['name'] + '=' + e['path'].rsplit('/', 1)[1] for e in sorted(j, key=lambda e: e['name']))")
                assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
                ours=$(json_get "$LAST_STDOUT" "' '.join(e['name'] + '=' + e['path'].rsplit('/', 1)[1] for e in sorted(j, key=lambda e: e['name']))")
                assert_eq "$ours" "$sd" "the same names and picks as systemd-sysext 262"
        else
                log "systemd-sysext 262 did not list here (exit $LAST_RC): $(head -n 1 <<<"$LAST_STDERR")"
        fi
fi

finish
