#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hostile inputs: symlinks out of images and out of the root, odd image names, FIFOs and device
# nodes, an image swapped during merges, 500 extensions, over-long paths, symlinked hierarchies
# and bad SYSTEMD_SYSEXT_HIERARCHIES. Each ends in a clear error or a correct result, never in a
# hang, a crash, a leaked loop device or a mount outside --root.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup timeout mknod mkfifo
setup_merge_scratch

# Mounts on the namespace's own /, /usr and /opt (never to be touched), and everything else.
host_mounts() {
        awk '$5 == "/" || $5 == "/usr" || $5 == "/opt" || $5 == "/tmp" { $1 = ""; $2 = ""; print }' /proc/self/mountinfo
}
host_mounts >"$SCRATCH/host.mounts"
assert_host_untouched() {
        if host_mounts | diff -u "$SCRATCH/host.mounts" - >"$SCRATCH/host.diff"; then
                pass "$1: no mount on the namespace's /, /usr, /opt or /tmp"
        else
                fail "$1: mounts on the namespace's /, /usr, /opt or /tmp changed:"
                sed 's/^/    /' "$SCRATCH/host.diff"
        fi
        local out
        out=$(awk -v s="$SCRATCH" '$9 == "overlay" && index($5, s "/") != 1 { print $5 }' /proc/self/mountinfo)
        assert_eq "$out" "" "$1: no overlay outside the scratch directory"
}

# The error is clear: exit 1, no crash, a message naming NEEDLE.
assert_clear_error() {  # WHAT NEEDLE
        assert_eq "$LAST_RC" 1 "$1: exit code"
        assert_contains "$LAST_STDERR" "$2" "$1: stderr"
        assert_not_contains "$LAST_STDERR" "Segmentation" "$1: stderr"
}

N=0
new_root() {            # new_root: fresh $R and $E
        N=$((N + 1))
        R=$SCRATCH/roots/r$N
        E=$R/var/lib/extensions
        make_root "$R"
}
cleanup_root() {
        sx --root="$R" --no-reload unmerge >/dev/null 2>&1 || true
        assert_eq "$(mounts_below "$R" | wc -l)" 0 "no mount left below the root"
}

# ---- symlinks inside images ----------------------------------------------------------------------
log "directory image whose usr is a symlink to the host's /usr"
new_root
make_ext_dir "$E/good" good
mkdir -p "$E/evil"
ln -s /usr "$E/evil/usr"
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$E/good" "$E/evil"
assert_clear_error "usr -> /usr" "evil"
assert_host_untouched "usr -> /usr"
cleanup_root

log "extension-release that is a symlink to /etc/os-release (the host's matches the root)"
new_root
make_ext_dir "$E/rel" rel
ln -sf /etc/os-release "$E/rel/usr/lib/extension-release.d/extension-release.rel"
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$E/rel"
assert_clear_error "extension-release -> /etc/os-release" "rel"
assert_host_untouched "extension-release -> /etc/os-release"
cleanup_root

log "usr/bin/x -> /etc/shadow inside an image is merged as a symlink, nothing is copied"
new_root
make_ext_dir "$E/sh" sh
ln -s /etc/shadow "$E/sh/usr/bin/x"
assert_ok timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$E/sh"
if [[ -L $R/usr/bin/x ]]; then pass "usr/bin/x is a symlink in the merge"; else fail "usr/bin/x is not a symlink"; fi
assert_eq "$(readlink "$R/usr/bin/x")" /etc/shadow "usr/bin/x target"
assert_eq "$(find "$R" -xdev -name shadow | wc -l)" 0 "no copy of shadow below the root"
cleanup_root

# ---- odd names --------------------------------------------------------------------------------
log "image names with dots: ..raw and a..b.raw, and symlinked names pointing out of the root"
new_root
make_ext_squashfs "$E/..raw" dot
make_ext_squashfs "$E/a..b.raw" a..b
make_ext_squashfs "$SCRATCH/outside.raw" outside
ln -s "$SCRATCH/outside.raw" "$E/abs-link.raw"
ln -s ../../../../../../../../../../../.."$SCRATCH/outside.raw" "$E/rel-link.raw"
run timeout 60 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
log "merge: exit $LAST_RC: $(_show "$LAST_STDERR" | tr '\n' '|')"
assert_eq "$((LAST_RC <= 1))" 1 "discovery with odd names: exit 0 or 1"
exts=$(merged_exts "$R" /usr)
assert_not_contains ",$exts," ",.," "'..raw' (a hidden file, name '.') is not merged as '.'"
if [[ $LAST_RC == 0 ]]; then
        assert_contains ",$exts," ",a..b," "a..b.raw is merged"
fi
# Symlinks in an extension directory resolve inside the root: the image outside it is never used.
if [[ -e $R/usr/bin/outside-hello ]]; then
        fail "an image from outside --root was merged through a symlink"
else
        pass "no image from outside --root merged through a symlink (merged: $exts)"
fi
assert_host_untouched "odd names"
cleanup_root
assert_no_scratch_loops "odd names"

# ---- FIFOs and device nodes -------------------------------------------------------------------
log "a FIFO as extension-release inside a directory image"
new_root
make_ext_dir "$E/ff" ff
rm "$E/ff/usr/lib/extension-release.d/extension-release.ff"
mkfifo "$E/ff/usr/lib/extension-release.d/extension-release.ff"
SECONDS=0
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$E/ff"
assert_clear_error "FIFO extension-release" "extension-release.ff"
log "FIFO case took ${SECONDS}s (no hang)"
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
assert_eq "$((LAST_RC <= 1))" 1 "FIFO extension-release, discovered: exit 0 or 1 (exit $LAST_RC)"
assert_eq "$(merged_exts "$R" /usr)" - "FIFO extension-release, discovered: nothing merged"
cleanup_root

log "a character device named x.raw in /var/lib/extensions"
new_root
make_ext_dir "$E/ok" ok
mknod "$E/x.raw" c 1 3
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$E/x.raw"
assert_clear_error "char device x.raw (named)" "x.raw"
run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
log "discovered: exit $LAST_RC: $(_show "$LAST_STDERR" | tr '\n' '|')"
assert_eq "$((LAST_RC <= 1))" 1 "char device x.raw (discovered): exit 0 or 1"
# Discovery passes over what is neither a regular file, a block device nor a directory, silently
# as systemd-sysext does.
assert_not_contains ",$(merged_exts "$R" /usr)," ",x," "char device x.raw is not merged"
cleanup_root

# ---- an image swapped while being merged ---------------------------------------------------------
log "b.raw replaced (rename over it) in a loop while merging and unmerging"
new_root
make_ext_dir "$E/a" a
for v in 1 2; do
        t=$SCRATCH/swap-src-$v
        make_ext_tree "$t" b
        printf '#!/bin/sh\necho v%s\n' "$v" >"$t/usr/bin/b-version"
        chmod 0755 "$t/usr/bin/b-version"
        echo "v$v" >"$t/opt/b/version"
        mksquashfs "$t" "$SCRATCH/b-v$v.raw" -noappend -quiet -no-progress -all-root >/dev/null
done
cp "$SCRATCH/b-v1.raw" "$E/b.raw"
(
        i=0
        while :; do
                i=$((i + 1))
                cp "$SCRATCH/b-v$((i % 2 + 1)).raw" "$E/.b.tmp" && mv -f "$E/.b.tmp" "$E/b.raw"
        done
) &
SWAPPER=$!
BG_PIDS="${BG_PIDS:-} $SWAPPER"
ok=0 errs=0
for i in $(seq 1 15); do
        run timeout 30 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        if ((LAST_RC == 0)); then
                u=$(timeout 5 "$R/usr/bin/b-version" 2>&1 || true)
                o=$(cat "$R/opt/b/version" 2>&1 || true)
                if [[ ($u == v1 || $u == v2) && $u == "$o" ]]; then
                        ok=$((ok + 1))
                else
                        fail "swap round $i: /usr says '$u', /opt says '$o'"
                fi
        elif ((LAST_RC == 1)); then
                errs=$((errs + 1))
                log "swap round $i: clear error: $(_show "$LAST_STDERR" | tail -n 1)"
        else
                fail "swap round $i: exit $LAST_RC: $LAST_STDERR"
        fi
        sx --root="$R" --no-reload unmerge >/dev/null 2>&1 || true
done
kill "$SWAPPER" 2>/dev/null || true
wait "$SWAPPER" 2>/dev/null || true
BG_PIDS=
assert_eq "$((ok + errs))" 15 "swap: $ok consistent merges (one version in /usr and /opt), $errs clear errors"
cleanup_root
assert_no_scratch_loops "after the swap rounds"

# ---- 500 extensions ------------------------------------------------------------------------------
# overlayfs stacks at most 500 lower layers (OVL_MAX_STACK); a merge adds the metadata layer on
# top and the base below, so 498 extensions fit and 499 or more must fail with a clear error.
many() {                # many COUNT: a root with COUNT directory extensions e0001...
        new_root
        local i d
        for i in $(seq -f '%04g' 1 "$1"); do
                d=$E/e$i
                mkdir -p "$d/usr/lib/extension-release.d" "$d/usr/share/e$i"
                printf 'ID=debian\nVERSION_ID=12\n' >"$d/usr/lib/extension-release.d/extension-release.e$i"
                echo "$i" >"$d/usr/share/e$i/n"
        done
}
log "500 directory extensions"
many 500
SECONDS=0
run timeout 170 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
log "merge of 500 extensions: exit $LAST_RC after ${SECONDS}s: $(_show "$LAST_STDERR" | tail -n 1)"
assert_clear_error "500 extensions" "/usr"
assert_eq "$(mounts_below "$R" | wc -l)" 0 "500 extensions: nothing mounted"
cleanup_root
log "498 directory extensions (the most that fit)"
many 498
SECONDS=0
assert_ok timeout 170 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
log "merge of 498 extensions took ${SECONDS}s"
assert_eq "$(cat "$R/usr/share/e0001/n" "$R/usr/share/e0498/n" 2>&1 | paste -sd,)" 0001,0498 "498 extensions: first and last visible"
cleanup_root

# ---- over-long paths -------------------------------------------------------------------------
log "a --root and an image path longer than PATH_MAX"
long=$SCRATCH/long
p=$long
while ((${#p} < 4200)); do p=$p/$(printf 'd%.0s' $(seq 1 200)); done
run timeout 20 "$SYSEXT_IDMAP" --root="$p" --no-reload merge
assert_clear_error "4200-byte --root" "cannot open root directory: File name too long"
run timeout 20 "$SYSEXT_IDMAP" --root="$SCRATCH/roots/r1" --no-reload merge "$p/x.raw"
assert_clear_error "4200-byte image path" "File name too long"
# A deep but valid root: every component short, the whole path under PATH_MAX.
deep=$SCRATCH/deep
d=$deep
while ((${#d} < 3900)); do d=$d/dddddddddddddddddddddddddddddddddddddddddddddddd; done
mkdir -p "$d"
R=$d
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/deep" deep
run timeout 30 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
log "deep root (${#R} bytes): exit $LAST_RC $(_show "$LAST_STDERR" | tail -n 1)"
assert_eq "$((LAST_RC <= 1))" 1 "deep root: exit 0 or 1"
if ((LAST_RC == 0)); then
        assert_eq "$("$R/usr/bin/deep-hello")" "hello from deep" "deep root: merged"
fi
cleanup_root
assert_host_untouched "long paths"

# ---- symlinked hierarchies --------------------------------------------------------------------
log "R/usr -> realusr (relative) is resolved inside the root"
new_root
mv "$R/usr" "$R/realusr"
ln -s realusr "$R/usr"
ln -sfn ../realusr/lib/os-release "$R/etc/os-release"
make_ext_dir "$E/s" s
assert_ok timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
assert_eq "$(awk -v p="$R/realusr" '$5 == p' /proc/self/mountinfo | wc -l)" 1 "overlay on R/realusr"
assert_eq "$("$R/usr/bin/s-hello")" "hello from s" "merged through the symlink"
assert_host_untouched "R/usr -> realusr"
cleanup_root

log "R/opt -> /opt and R/opt -> /tmp must not escape to the namespace's /opt or /tmp"
for tgt in /opt /tmp; do
        new_root
        rm -rf "$R/opt"
        ln -s "$tgt" "$R/opt"
        make_ext_dir "$E/o" o
        run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        log "R/opt -> $tgt: exit $LAST_RC: $(_show "$LAST_STDERR" | tr '\n' '|')"
        assert_eq "$((LAST_RC <= 1))" 1 "R/opt -> $tgt: exit 0 or 1"
        assert_host_untouched "R/opt -> $tgt"
        assert_eq "$(find "$tgt" -maxdepth 1 -name o | wc -l)" 0 "R/opt -> $tgt: no extension content in the namespace's $tgt"
        cleanup_root
done

log "R/usr -> / and R/usr -> ../../.. must never mount over the namespace's / or /usr"
for tgt in / ../../..; do
        new_root
        # A real os-release in etc/, so that the merge gets as far as the hierarchies.
        rm -f "$R/etc/os-release"
        cp "$R/usr/lib/os-release" "$R/etc/os-release"
        rm -rf "$R/usr"
        ln -s "$tgt" "$R/usr"
        make_ext_dir "$E/u" u
        run timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        log "R/usr -> $tgt: exit $LAST_RC: $(_show "$LAST_STDERR" | tr '\n' '|')"
        assert_eq "$((LAST_RC <= 1))" 1 "R/usr -> $tgt: exit 0 or 1"
        if [[ $tgt == / ]]; then
                assert_contains "$LAST_STDERR" "/usr: resolves to the root directory itself" "R/usr -> /: refused by name"
        fi
        assert_host_untouched "R/usr -> $tgt"
        cleanup_root
done

# ---- SYSTEMD_SYSEXT_HIERARCHIES ------------------------------------------------------------------
log "bad SYSTEMD_SYSEXT_HIERARCHIES"
new_root
make_ext_dir "$E/h" h
for h in "/usr/../etc" "/.." "usr" "./usr" "/usr:opt" "/" $'/usr\n/etc' $'/us\x01r' $'/usr\t' "/usr/.."; do
        run env SYSTEMD_SYSEXT_HIERARCHIES="$h" timeout 20 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        assert_clear_error "SYSTEMD_SYSEXT_HIERARCHIES=$(printf '%q' "$h")" "SYSTEMD_SYSEXT_HIERARCHIES"
done
assert_eq "$(mounts_below "$R" | wc -l)" 0 "bad hierarchies: nothing mounted"
assert_host_untouched "bad hierarchies"

assert_no_scratch_loops "at the end"
finish
