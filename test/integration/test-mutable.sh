#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# --mutable= modes, --noexec=, $SYSTEMD_SYSEXT_MUTABLE_MODE, $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS
# and sysext.conf, against a scratch root (--root=): writes land in var/lib/extensions.mutable/<h>
# as with systemd-sysext, the workdir and its work_dir marker, ephemeral writes die with the merge.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
M=$R/var/lib/extensions.mutable
make_root "$R"
make_ext_dir "$E/a" a

# ovl_opts PATH: the super options of the overlay on PATH.
ovl_opts() {
        findmnt -n -o OPTIONS --mountpoint "$1" | head -n 1
}

wait_loops_settled
snapshot_state "$SCRATCH/state.before"

log "--mutable=help and bad spellings"
assert_ok sx --mutable=help
assert_eq "$LAST_STDOUT" "$(printf 'Known mutability modes:\nno\nyes\nauto\nimport\nephemeral\nephemeral-import')" "--mutable=help"
assert_fail sx --root="$R" --mutable=bogus merge
assert_one_stderr_line "--mutable=: unknown mode 'bogus'"
assert_fail sx --root="$R" --noexec=maybe merge

log "yes: writes land in var/lib/extensions.mutable/usr, workdir next to it"
assert_ok sx --root="$R" --mutable=yes merge
assert_contains "$(ovl_opts "$R/usr")" "rw" "/usr overlay options"
echo written >"$R/usr/lib/written"
assert_eq "$(cat "$M/usr/lib/written")" written "write landed in the mutable dir"
[[ -d $M/.systemd-usr-workdir ]] && pass "workdir exists" || fail "no $M/.systemd-usr-workdir"
assert_eq "$(stat -c %a "$M/usr")" "$(stat -c %a "$R/usr")" "mutable dir mode = hierarchy mode"
assert_eq "$(cat "$R/usr/.systemd-sysext/work_dir")" "var/lib/extensions.mutable/.systemd-usr-workdir" "work_dir marker"
assert_eq "$(stat -c %u:%g "$M/usr/lib/written")" 0:0 "written file: the writer's ids"
# The markers stay read-only in a writable merge (systemd-sysext binds them so): nobody who may
# write /usr can rewrite which merge this is.
check_markers_ro() {    # check_markers_ro WHAT
        if (echo forged >"$R/usr/.systemd-sysext/extensions") 2>/dev/null ||
           touch "$R/usr/.systemd-sysext/new" 2>/dev/null; then
                fail "$1: the marker directory is writable"
        else
                pass "$1: the marker directory is read-only"
        fi
        [[ ! -e $M/usr/.systemd-sysext ]] && pass "$1: no marker copied up" || fail "$1: $M/usr/.systemd-sysext exists"
}
check_markers_ro "merge"
assert_ok sx --root="$R" status
log "refresh keeps the writable merge and its content"
assert_ok sx --root="$R" --mutable=yes refresh
assert_eq "$(cat "$R/usr/lib/written")" written "content after refresh"
check_markers_ro "refresh"
assert_eq "$(findmnt -n -o TARGET --list | grep -c "^$R/usr/.systemd-sysext\$" || true)" 1 "one marker mount after refresh"
assert_ok sx --root="$R" unmerge
[[ ! -e $M/.systemd-usr-workdir ]] && pass "unmerge removed the workdir" || fail "workdir left behind"
assert_eq "$(cat "$M/usr/lib/written")" written "mutable dir kept after unmerge"
[[ ! -e $R/usr/lib/written ]] && pass "host /usr untouched" || fail "write reached the host /usr"

log "auto: mutable with the directory, immutable without"
assert_ok sx --root="$R" --mutable=auto merge
assert_eq "$(cat "$R/usr/lib/written")" written "auto uses the existing dir"
assert_ok sx --root="$R" unmerge
mv "$M" "$M.away"
assert_ok sx --root="$R" --mutable=auto merge
assert_contains "$(ovl_opts "$R/usr")" "ro" "auto without the dir: read-only"
[[ ! -e $M ]] && pass "auto created nothing" || fail "auto created $M"
assert_ok sx --root="$R" unmerge
mv "$M.away" "$M"

log "mode mismatch refused"
chmod 0700 "$M/usr"
snapshot_state "$SCRATCH/state.mm"
assert_fail sx --root="$R" --mutable=auto merge
assert_contains "$LAST_STDERR" "has mode 0700, ought to have mode 0755" "mode mismatch"
assert_state_unchanged "$SCRATCH/state.mm" "refused merge"
chmod 0755 "$M/usr"

log "a mutable dir not controlled by root is refused"
chown 1000 "$M/usr"
assert_fail sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "not owned by root" "foreign-owned mutable dir"
chown 0 "$M/usr"
chmod 0777 "$M"
assert_fail sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "writable by group or others" "world-writable parent"
chmod 0755 "$M"

log "import: the directory is a read-only layer below the metadata"
assert_ok sx --root="$R" --mutable=import merge
assert_eq "$(cat "$R/usr/lib/written")" written "imported content visible"
if touch "$R/usr/lib/other" 2>/dev/null; then fail "import is writable"; else pass "import is read-only"; fi
assert_eq "$("$R/usr/bin/a-hello")" "hello from a" "extension still there"
assert_ok sx --root="$R" unmerge

log "ephemeral: writable, gone after unmerge; the mutable dir is not used"
assert_ok sx --root="$R" --mutable=ephemeral merge
[[ ! -e $R/usr/lib/written ]] && pass "ephemeral ignores the mutable dir" || fail "ephemeral shows the mutable dir"
echo temp >"$R/usr/lib/temp"
[[ ! -e $M/usr/lib/temp ]] && pass "ephemeral write not in the mutable dir" || fail "ephemeral wrote the mutable dir"
[[ ! -e $R/usr/.systemd-sysext/work_dir ]] && pass "no work_dir marker" || fail "work_dir marker in ephemeral mode"
assert_eq "$(mounts_below "$R" | grep -vc "^$R/usr\$\|^$R/opt\$\|/.systemd-sysext\$" || true)" 0 "no mount of the ephemeral layer anywhere"
assert_ok sx --root="$R" unmerge
[[ ! -e $R/usr/lib/temp ]] && pass "ephemeral write gone after unmerge" || fail "ephemeral write survived"
log "ephemeral-import: the mutable dir shows, writes do not reach it"
assert_ok sx --root="$R" --mutable=ephemeral-import merge
assert_eq "$(cat "$R/usr/lib/written")" written "imported content visible"
echo changed >"$R/usr/lib/written"
assert_eq "$(cat "$M/usr/lib/written")" written "mutable dir unchanged"
assert_ok sx --root="$R" unmerge

log "the staging fallback builds writable overlays too"
if has_test_hooks; then
        SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 assert_ok sx --root="$R" --mutable=yes merge
        echo fb >"$R/usr/lib/fallback"
        assert_eq "$(cat "$M/usr/lib/fallback")" fb "fallback write landed"
        assert_ok sx --root="$R" unmerge
fi

log "no extensions: a writable mode merges anyway"
mv "$E/a" "$SCRATCH/a.away"
assert_ok sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "No extensions found, proceeding in mutable mode." "notice"
assert_eq "$(cat "$R/usr/lib/written")" written "mutable content without extensions"
assert_ok sx --root="$R" unmerge
mv "$SCRATCH/a.away" "$E/a"

log "--noexec"
assert_ok sx --root="$R" merge
assert_eq "$("$R/usr/bin/a-hello")" "hello from a" "exec allowed by default"
assert_ok sx --root="$R" unmerge
assert_ok sx --root="$R" --noexec=yes merge
assert_contains "$(findmnt -n -o VFS-OPTIONS --mountpoint "$R/usr")" "noexec" "noexec flag"
if "$R/usr/bin/a-hello" 2>/dev/null; then fail "executed from a noexec merge"; else pass "noexec refuses execution"; fi
assert_ok sx --root="$R" unmerge
assert_ok sx --root="$R" --noexec=no merge
assert_eq "$("$R/usr/bin/a-hello")" "hello from a" "--noexec=no"
assert_ok sx --root="$R" unmerge

log "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS replaces the writable defaults; layers refused"
SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS=noatime,metacopy=off assert_ok sx --root="$R" --mutable=yes merge
assert_not_contains "$(ovl_opts "$R/usr")" "redirect_dir=on" "defaults replaced"
assert_contains "$(findmnt -n -o VFS-OPTIONS --mountpoint "$R/usr")" "noatime" "noatime"
assert_ok sx --root="$R" unmerge
for bad in lowerdir=/x upperdir=/x workdir=/x lowerdir+=/x source=x rw suid exec dev; do
        SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS=$bad assert_fail sx --root="$R" merge
        assert_contains "$LAST_STDERR" "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS: overlay mount option" "$bad refused"
done
SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS=frobnicate assert_fail sx --root="$R" merge
assert_contains "$LAST_STDERR" "frobnicate" "unknown option: the kernel's refusal"

log "precedence: --mutable > SYSTEMD_SYSEXT_MUTABLE_MODE > sysext.conf > no"
mkdir -p "$R/etc/systemd/sysext.conf.d" "$R/usr/lib/systemd"
printf '[SysExt]\nMutable=ephemeral\n' >"$R/usr/lib/systemd/sysext.conf"
printf '[SysExt]\nMutable=import\n' >"$R/etc/systemd/sysext.conf"
assert_ok sx --root="$R" merge
assert_contains "$(ovl_opts "$R/usr")" "ro" "config Mutable=import: read-only"
assert_eq "$(cat "$R/usr/lib/written")" written "config Mutable=import took effect"
assert_ok sx --root="$R" unmerge
printf '[SysExt]\nMutable=yes\n' >"$R/etc/systemd/sysext.conf.d/50-yes.conf"
assert_ok sx --root="$R" merge
assert_contains "$(ovl_opts "$R/usr")" "upperdir=" "drop-in overrides the main file"
assert_ok sx --root="$R" unmerge
SYSTEMD_SYSEXT_MUTABLE_MODE=no assert_ok sx --root="$R" merge
assert_not_contains "$(ovl_opts "$R/usr")" "upperdir=" "environment over config"
assert_ok sx --root="$R" unmerge
SYSTEMD_SYSEXT_MUTABLE_MODE=no assert_ok sx --root="$R" --mutable=ephemeral merge
assert_contains "$(ovl_opts "$R/usr")" "upperdir=" "command line over environment"
assert_ok sx --root="$R" unmerge
SYSTEMD_SYSEXT_MUTABLE_MODE=bogus assert_fail sx --root="$R" merge
assert_one_stderr_line "SYSTEMD_SYSEXT_MUTABLE_MODE: unknown mode 'bogus'"

log "sysext.conf: errors name the file, unknown keys warn, foreign-owned files are refused"
printf '[SysExt]\nMutable=bogus\n' >"$R/etc/systemd/sysext.conf.d/50-yes.conf"
assert_fail sx --root="$R" merge
assert_contains "$LAST_STDERR" "/etc/systemd/sysext.conf.d/50-yes.conf:2: Mutable=: unknown mode 'bogus'" "bad value"
printf '[SysExt]\nFoo=bar\n' >"$R/etc/systemd/sysext.conf.d/50-yes.conf"
assert_ok sx --root="$R" status
assert_contains "$LAST_STDERR" "50-yes.conf:2: unknown key 'Foo'" "unknown key warns"
printf '[SysExt]\nImagePolicy=root=signed+absent:usr=signed+absent\n' >"$R/etc/systemd/sysext.conf.d/50-yes.conf"
rm "$R/etc/systemd/sysext.conf"
run sx --root="$R" merge
assert_contains "$LAST_STDERR" "refused by the image policy" "ImagePolicy= from the config refuses the unsigned dir"
assert_ok sx --root="$R" --image-policy='*' merge
assert_eq "$("$R/usr/bin/a-hello")" "hello from a" "--image-policy= over ImagePolicy="
assert_ok sx --root="$R" unmerge
chown 1000 "$R/etc/systemd/sysext.conf.d/50-yes.conf"
assert_fail sx --root="$R" status
assert_contains "$LAST_STDERR" "not owned by root" "foreign-owned config refused"
rm -rf "$R/etc/systemd" "$R/usr/lib/systemd"

log "a mutable dir that is a symlink to the hierarchy: the hierarchy is the upper dir (as systemd-sysext)"
# Absolute, as an administrator writes it: resolved inside the root. (Never read through "$M/usr"
# here: outside the root it is the machine's own /usr.)
rm -rf "$M"
mkdir -p "$M"
ln -s /usr "$M/usr"
assert_ok sx --root="$R" --mutable=yes merge
assert_contains "$(ovl_opts "$R/usr")" "rw" "/usr overlay options"
assert_eq "$("$R/usr/bin/a-hello")" "hello from a" "the extension shows"
echo direct >"$R/usr/lib/direct"
[[ -d $R/.systemd-usr-workdir ]] && pass "workdir next to the hierarchy" || fail "no $R/.systemd-usr-workdir"
assert_eq "$(cat "$R/usr/.systemd-sysext/work_dir")" ".systemd-usr-workdir" "work_dir marker"
assert_eq "$(grep -c "^$R/usr " <(findmnt -n -o TARGET,FSTYPE --list) || true)" 1 "one mount on /usr"
assert_ok sx --root="$R" unmerge
chmod o+w "$M"
assert_fail sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "refusing to merge it" "a symlink in a directory others may write is refused"
chmod o-w "$M"
assert_ok sx --root="$R" --mutable=yes merge
log "... refresh (the symlink now resolves to the merged /usr) keeps it"
assert_ok sx --root="$R" --mutable=yes refresh
assert_eq "$(cat "$R/usr/lib/direct")" direct "content after refresh"
echo again >"$R/usr/lib/again"
assert_ok sx --root="$R" unmerge
assert_not_mounted "$R/usr" "/usr after unmerge"
assert_eq "$(cat "$R/usr/lib/direct" "$R/usr/lib/again" 2>&1 | tr '\n' ' ')" "direct again " "writes reached the hierarchy itself"
[[ ! -e $R/.systemd-usr-workdir ]] && pass "unmerge removed the workdir" || fail "workdir left behind"
[[ ! -e $R/usr/.systemd-sysext ]] && pass "no marker left in the hierarchy" || fail "$R/usr/.systemd-sysext left behind"
rm -f "$R/usr/lib/direct" "$R/usr/lib/again"
log "... import modes refuse it (systemd-sysext: ELOOP); a hierarchy that is a mount of its own is refused"
snapshot_state "$SCRATCH/state.link"
assert_fail sx --root="$R" --mutable=import merge
assert_contains "$LAST_STDERR" "Not importing mutable directory for hierarchy /usr as a lower dir, because it points to the hierarchy itself" "import refused"
mkdir -p "$R/opt"
mount -t tmpfs -o mode=0755 tmpfs "$R/opt"
echo host >"$R/opt/host-file"
rm -rf "$M/opt"         # made by the merges above (yes creates it for every hierarchy)
ln -s /opt "$M/opt"

snapshot_state "$SCRATCH/state.link"
assert_fail sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "parent directory of the upperdir is in a different filesystem" "a hierarchy on a mount of its own refused"
[[ ! -e $R/.systemd-opt-workdir ]] && pass "refused: no workdir made" || fail "refused, but $R/.systemd-opt-workdir was made"
assert_state_unchanged "$SCRATCH/state.link" "refused hierarchy-as-upper merges"
umount "$R/opt"
rm -rf "$M" "$R/opt/host-file"
log "... a plain mutable dir that is a mount of its own is refused too, and nothing is made next to it"
mkdir -p "$M/usr" "$M/opt"
mount -t tmpfs -o mode=0755 tmpfs "$M/opt"
ls -A "$M" >"$SCRATCH/mutable.before"
snapshot_state "$SCRATCH/state.plain"
assert_fail sx --root="$R" --mutable=yes merge
assert_contains "$LAST_STDERR" "parent directory of the upperdir is in a different filesystem" "an upper dir on a mount of its own refused"
assert_eq "$(ls -A "$M" | diff "$SCRATCH/mutable.before" - && echo same)" same "refused: nothing made next to the upper dir"
assert_state_unchanged "$SCRATCH/state.plain" "refused plain-upper merge"
umount "$M/opt"
rm -rf "$M"

log "PAM-like and run merges never get a writable layer"
assert_fail sx --mutable=yes run -- true
assert_contains "$LAST_STDERR" "run: --mutable= does not apply" "run refuses --mutable"

wait_loops_settled
assert_state_unchanged "$SCRATCH/state.before" "after all modes"
finish
