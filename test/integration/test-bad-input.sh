#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Broken, hostile or odd images: `dissect` and `merge IMAGE` must fail with exit != 0 and one line
# on stderr naming the file, `merge` of the discovered image alone must fail naming it (it is
# skipped, and nothing is left), and all must leave mounts and loop devices exactly as they were.
set -euo pipefail
source "$TEST_LIB"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs veritysetup sfdisk timeout
setup_scratch

# A fresh root per case, holding only the broken image, so that `merge` has nothing else to do.
new_root() {
        R=$SCRATCH/roots/$1
        make_root "$R"
        E=$R/var/lib/extensions
}

squash_tree() {         # squash_tree SRC OUT
        mksquashfs "$1" "$2" -noappend -quiet -no-progress -all-root >/dev/null
}

# check_bad [--may-be-ignored] CASE PATH [NEEDLE]: PATH is the image inside $R; NEEDLE (default:
# its basename) must appear in the error line. With --may-be-ignored (entries that discovery does
# not take for images at all, as systemd-sysext does), `merge` may instead succeed having merged
# nothing and said so on stderr.
check_bad() {
        local ignorable=0
        if [[ $1 == --may-be-ignored ]]; then ignorable=1; shift; fi
        local what=$1 path=$2 needle=${3:-${2##*/}} snap=$SCRATCH/state.$1
        log "case $what: dissect"
        snapshot_state "$snap"
        assert_fail timeout 60 "$SYSEXT_IDMAP" dissect "$path"
        [[ $LAST_RC -ne 124 ]] || fail "$what: dissect timed out"
        assert_one_stderr_line "$needle"
        assert_state_unchanged "$snap" "$what: dissect"

        log "case $what: merge (named)"
        run timeout 60 "$SYSEXT_IDMAP" --root="$R" --no-reload merge "$path"
        if ((ignorable && LAST_RC == 0)); then
                pass "$what: named merge skipped the entry (exit 0)"
        else
                if ((LAST_RC != 0)); then
                        pass "$what: named merge fails (exit $LAST_RC)"
                else
                        fail "$what: named merge unexpectedly succeeded"
                fi
                [[ $LAST_RC -ne 124 ]] || fail "$what: named merge timed out"
                assert_one_stderr_line "$needle"
        fi
        assert_state_unchanged "$snap" "$what: named merge"

        # Discovered, a broken image is skipped with a notice naming it; with nothing else to
        # merge the merge fails (exit 1) saying so.
        log "case $what: merge (discovered)"
        run timeout 60 "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        if ((ignorable && LAST_RC == 0)); then
                pass "$what: merge skipped the entry (exit 0)"
                assert_one_stderr_line "No suitable extensions found"
        else
                assert_eq "$LAST_RC" 1 "$what: exit status of the merge"
                assert_contains "$LAST_STDERR" "$needle" "stderr"
                if [[ $(printf '%s\n' "$LAST_STDERR" | wc -l) -eq 1 ||
                      $(printf '%s\n' "$LAST_STDERR" | tail -n 1) == "No extensions merged: 1 discovered image could not be used." ]]; then
                        pass "$what: one error line, or one notice and the summary"
                else
                        fail "$what: unexpected stderr:"
                        printf '%s\n' "$LAST_STDERR" | sed 's/^/    /' | head -n 10
                fi
        fi
        assert_state_unchanged "$snap" "$what: merge"
        if [[ -e $R/usr/.systemd-sysext ]]; then
                fail "$what: merge left $R/usr/.systemd-sysext behind"
        else
                pass "$what: no merge marker written"
        fi
}

log "truncated squashfs"
new_root truncated
# Big enough that cutting it loses the tables at its end (a tiny image fits in its first 4 KiB).
make_ext_tree "$SCRATCH/truncsrc" trunc
head -c 2M /dev/urandom >"$SCRATCH/truncsrc/usr/lib/blob"
squash_tree "$SCRATCH/truncsrc" "$E/trunc.raw"
truncate -s 64K "$E/trunc.raw"
check_bad truncated "$E/trunc.raw"

log "random bytes"
new_root garbage
head -c 1M /dev/urandom >"$E/garbage.raw"
check_bad garbage "$E/garbage.raw"

log "an empty file"
new_root empty
: >"$E/empty.raw"
check_bad empty "$E/empty.raw"

log "GPT with only a Linux-data partition"
new_root nousable
make_ext_erofs "$SCRATCH/nousable.erofs" nousable
truncate -s 4M "$E/nousable.raw"
echo "start=2048, size=4096, type=$GPT_LINUX_GENERIC" |
        sfdisk --quiet --no-reread --no-tell-kernel --label gpt "$E/nousable.raw" >/dev/null
dd if="$SCRATCH/nousable.erofs" of="$E/nousable.raw" bs=512 seek=2048 conv=notrunc status=none
check_bad no-usable-partition "$E/nousable.raw"

log "GPT with overlapping partitions"
new_root overlap
make_ext_ddi_unpriv "$E/overlap.raw" overlap
gpt_tool set-entry "$E/overlap.raw" 1 --first 2050
check_bad overlapping "$E/overlap.raw"

log "GPT whose partition lies beyond the end of the file (file truncated after partitioning)"
new_root outofrange
make_ext_ddi_unpriv "$E/oor.raw" oor
truncate -s $((2049 * 512)) "$E/oor.raw"
check_bad out-of-range-truncated "$E/oor.raw"

log "GPT whose partition ends at an absurd LBA"
new_root farlba
make_ext_ddi_unpriv "$E/far.raw" far
gpt_tool set-entry "$E/far.raw" 0 --last $((1 << 40))
check_bad out-of-range-lba "$E/far.raw"

log "GPT header claiming more partition entries than fit before the first usable LBA"
new_root manyentries
make_ext_ddi_unpriv "$E/many.raw" many
gpt_tool set-num-entries "$E/many.raw" 100000
check_bad too-many-entries "$E/many.raw"

log "extension-release full of binary junk (directory and squashfs)"
new_root junk
make_ext_tree "$E/junkdir" junkdir
{ printf 'ID=debian\nVERSION_ID=12\n'; head -c 4096 /dev/urandom; printf '\0\n\377\376=\001\n'; } \
        >"$E/junkdir/usr/lib/extension-release.d/extension-release.junkdir"
check_bad junk-dir "$E/junkdir"
new_root junkraw
make_ext_tree "$SCRATCH/junksrc" junkraw
{ printf 'ID=debian\nVERSION_ID=12\n'; head -c 4096 /dev/urandom; printf '\0\n'; } \
        >"$SCRATCH/junksrc/usr/lib/extension-release.d/extension-release.junkraw"
squash_tree "$SCRATCH/junksrc" "$E/junkraw.raw"
check_bad junk-raw "$E/junkraw.raw"

log "extension-release with a 1 MiB line"
new_root longline
make_ext_tree "$E/longline" longline
{ printf 'ID=debian\nVERSION_ID=12\nJUNK='; head -c 1048576 /dev/zero | tr '\0' a; echo; } \
        >>"$E/longline/usr/lib/extension-release.d/extension-release.longline"
check_bad long-line "$E/longline"

log "image name with a control character"
new_root ctlname
ctl=$'ctl\001name'
make_ext_dir "$E/$ctl" "$ctl"
check_bad --may-be-ignored control-char "$E/$ctl" ctl

log "name of the image and of its extension-release file differ"
new_root mismatch
make_ext_squashfs "$E/mismatch.raw" othername
check_bad name-mismatch "$E/mismatch.raw"

log "directory image whose usr is a symlink to /"
new_root symroot
mkdir -p "$E/symroot"
ln -s / "$E/symroot/usr"
check_bad usr-symlink-root "$E/symroot"

log "directory image whose usr escapes through .. to a valid-looking tree outside"
new_root symdotdot
make_ext_tree "$SCRATCH/outside" symdotdot
mkdir -p "$E/symdotdot"
ln -s "$(realpath --relative-to="$E/symdotdot" "$SCRATCH/outside/usr")" "$E/symdotdot/usr"
check_bad usr-symlink-dotdot "$E/symdotdot"

log "a FIFO named like an image (must not hang)"
new_root fifo
mkfifo "$E/fifo.raw"
check_bad --may-be-ignored fifo "$E/fifo.raw"

finish
