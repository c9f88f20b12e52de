#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/run.sh [--runs N] [--copy-runs N] [--files N] [--disk]
#
# Side-by-side benchmark of sysext-idmap (see bench/README.md). Runs in its own private mount
# namespace (tmpfs on /run and /tmp), builds every image at run time in a scratch directory that is
# removed afterwards (loop devices too). Prints medians, minima and ratios; asserts nothing about
# time. Exit status 0 unless something breaks (a merge that does not show up, a tool failing).

set -u -o pipefail

RUNS=30
COPY_RUNS=3
NFILES=100000
SMALL_FILES=10
ON_DISK=0

usage() {
        sed -n '4p' "$0" | sed 's/^# //'
        exit "${1:-0}"
}

args=("$@")
while (($# > 0)); do
        case $1 in
                --runs) RUNS=${2:?}; shift 2 ;;
                --runs=*) RUNS=${1#*=}; shift ;;
                --copy-runs) COPY_RUNS=${2:?}; shift 2 ;;
                --copy-runs=*) COPY_RUNS=${1#*=}; shift ;;
                --files) NFILES=${2:?}; shift 2 ;;
                --files=*) NFILES=${1#*=}; shift ;;
                --disk) ON_DISK=1; shift ;;
                -h|--help) usage 0 ;;
                *) echo "unknown argument: $1" >&2; usage 2 ;;
        esac
done
for v in RUNS COPY_RUNS NFILES; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
set -- "${args[@]}"

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_ROOT=$(cd "$BENCH_DIR/.." && pwd)
: "${SYSEXT_IDMAP:=$SOURCE_ROOT/build/src/sysext-idmap/sysext-idmap}"
export SYSEXT_IDMAP SOURCE_ROOT

# shellcheck source=../test/integration/lib.sh
. "$SOURCE_ROOT/test/integration/lib.sh"
TEST_NAME=bench

require_root
require_binary
require_cmd unshare systemd-sysext mksquashfs mkfs.erofs cc python3 losetup
enter_private_ns "$@"            # re-executes this script in a private mount namespace
# systemd-sysext 252 needs / shared inside the namespace (VM-NOTES §5); still private to the host.
make_ns_shared_for_systemd_sysext
setup_scratch

# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"
SUMMARY=()

# ---------------------------------------------------------------------------------------------
# Images

# A big extension tree: NAME's usual files plus COUNT small files under usr/share/NAME/dXXX/,
# all owned by uid/gid 1000 (the "unprivileged build" the idmap is for).
make_big_tree() {       # make_big_tree DIR NAME COUNT
        local d=$1 name=$2 count=$3
        make_ext_tree "$d" "$name"
        python3 - "$d/usr/share/$name" "$count" <<'EOF'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
per = 1000
for i in range(n):
    d = os.path.join(top, "d%03d" % (i // per))
    if i % per == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "w") as f:
        f.write("file %d\n" % i)
EOF
        chown -R 1000:1000 "$d"
}

say "sysext-idmap: $SYSEXT_IDMAP"
say "systemd-sysext: $(systemd-sysext --version | head -n 1)"
say "kernel $(uname -r), $(nproc) cpus; runs=$RUNS copy-runs=$COPY_RUNS files=$NFILES; scratch $SCRATCH"

# Part 1: one root, three extensions (directory, squashfs, erofs), owned by root.
R1=$SCRATCH/root1
make_root "$R1"
make_ext_dir "$R1/var/lib/extensions/bdir" bdir
make_ext_squashfs "$R1/var/lib/extensions/bsquash.raw" bsquash
make_ext_erofs "$R1/var/lib/extensions/berofs.raw" berofs
P1_FILES=(usr/bin/bdir-hello usr/bin/bsquash-hello usr/bin/berofs-hello opt/berofs/data)

# Parts 2 and 3: a 10-file and an N-file erofs, owned by 1000; the N-file tree also stays as a
# directory extension (the "original" for the copy comparison).
say "building a $NFILES-file tree and its erofs image"
SMALL_SRC=$SCRATCH/small-src
R2S=$SCRATCH/root2-few
R2B=$SCRATCH/root2-many
R3O=$SCRATCH/root3-orig
R3C=$SCRATCH/root3-copy
for r in "$R2S" "$R2B" "$R3O" "$R3C"; do make_root "$r"; done
make_big_tree "$SMALL_SRC" few "$SMALL_FILES"
if ((ON_DISK)); then
        # The tree and its copies on the scratch file system, in ROOT/var/lib/extensions.
        ORIG=$R3O/var/lib/extensions/many
        COPY=$R3C/var/lib/extensions/many
else
        # Default: ROOT/run is a tmpfs, as /run is on a real system, and both the tree and its
        # copies live in ROOT/run/extensions. This is the best case for chown-a-copy (no disk I/O)
        # and keeps the run short and steady on a shared disk.
        for r in "$R3O" "$R3C"; do
                if ! { mount -t tmpfs -o mode=0755 tmpfs "$r/run" && mkdir -p "$r/run/extensions"; }; then
                        die "cannot mount a tmpfs on $r/run"
                fi
        done
        ORIG=$R3O/run/extensions/many
        COPY=$R3C/run/extensions/many
fi
make_big_tree "$ORIG" many "$NFILES"
mkfs.erofs --quiet --force-uid=1000 --force-gid=1000 "$R2S/var/lib/extensions/few.raw" "$SMALL_SRC" >/dev/null ||
        die "mkfs.erofs failed"
mkfs.erofs --quiet --force-uid=1000 --force-gid=1000 "$R2B/var/lib/extensions/many.raw" "$ORIG" >/dev/null ||
        die "mkfs.erofs failed"
n_found=$(find "$ORIG/usr/share/many" -type f | wc -l)
[[ $n_found -eq $NFILES ]] || die "big tree has $n_found files, want $NFILES"
say "images ready ($(du -sh "$R2B/var/lib/extensions/many.raw" | cut -f1) erofs; tree $(du -sh "$ORIG" | cut -f1) on $(findmnt -n -o FSTYPE -T "$ORIG")); sync"
sync    # no writeback of what we just wrote while we time

IDMAP=--idmap=b:1000:0:1
SX=("$SYSEXT_IDMAP")
SD=(systemd-sysext)

# ---------------------------------------------------------------------------------------------
# Part 1: sysext-idmap vs systemd-sysext 252, merge / refresh / unmerge, interleaved.

D=$SCRATCH/times
mkdir -p "$D"

# The floor: spawning a process that does nothing, and sysext-idmap's own start-up.
p1_floor() {
        timed "$D/p1-true" /bin/true
        timed "$D/p1-version" "${SX[@]}" --version
}

p1_block() {            # p1_block TOOL(sx|sd) RECORD(0|1)
        local t=$1 rec=$2 f=
        local -a cmd
        if [[ $t == sx ]]; then cmd=("${SX[@]}"); else cmd=("${SD[@]}"); fi
        check_unmerged "$R1" "$t"
        ((rec)) && f=$D/p1-$t-merge
        timed "$f" "${cmd[@]}" --root="$R1" merge
        ((rec)) || check_merged "$R1" "$t merge" "${P1_FILES[@]}"
        ((rec)) && f=$D/p1-$t-refresh
        timed "$f" "${cmd[@]}" --root="$R1" refresh
        ((rec)) || check_merged "$R1" "$t refresh" "${P1_FILES[@]}"
        ((rec)) && f=$D/p1-$t-unmerge
        timed "$f" "${cmd[@]}" --root="$R1" unmerge
        check_unmerged "$R1" "$t unmerge"
}

say "part 1: $RUNS x (merge, refresh, unmerge) per tool, interleaved"
p1_block sx 0            # warm-up, with content checks after merge and refresh
p1_block sd 0
for ((i = 0; i < RUNS; i++)); do
        if ((i % 2 == 0)); then p1_block sx 1; p1_block sd 1; else p1_block sd 1; p1_block sx 1; fi
        p1_floor
done

echo
echo "== 1. sysext-idmap vs systemd-sysext 252 (3 extensions: directory, squashfs, erofs; $RUNS runs, interleaved)"
for op in merge unmerge refresh; do
        read -r sx_med sx_min < <(stats "$D/p1-sx-$op")
        read -r sd_med sd_min < <(stats "$D/p1-sd-$op")
        rt=$(ratio "$sx_med" "$sd_med")
        # The project's target is for merge only; unmerge and refresh are shown for comparison.
        target=""
        [[ $op == merge ]] && target="(target <= 0.10)"
        printf '%s: sysext-idmap %s ms, systemd-sysext %s ms, ratio X/Y = %s %s   [min %s / %s ms, ratio %s]\n' \
                "$op" "$sx_med" "$sd_med" "$rt" "$target" "$sx_min" "$sd_min" "$(ratio "$sx_min" "$sd_min")"
        SUMMARY+=("$(printf '%-34s %9s   %s' "$op vs systemd-sysext (median)" "$rt" "$target")")
done
read -r t_med t_min < <(stats "$D/p1-true")
read -r v_med v_min < <(stats "$D/p1-version")
read -r sdu_med _ < <(stats "$D/p1-sd-unmerge")
printf 'floor: spawning /bin/true %s ms (min %s), sysext-idmap --version %s ms (min %s);\n' "$t_med" "$t_min" "$v_med" "$v_min"
printf '       /bin/true alone is %s of systemd-sysext'"'"'s unmerge\n' "$(ratio "$t_med" "$sdu_med")"

# ---------------------------------------------------------------------------------------------
# Part 2: cost per file of idmapping: merge of a 10-file vs an N-file erofs, --idmap=b:1000:0:1.

p2_block() {            # p2_block ROOT TAG RECORD [IDMAP]
        local r=$1 tag=$2 rec=$3 f=
        shift 3
        check_unmerged "$r" "$tag"
        ((rec)) && f=$D/p2-$tag
        timed "$f" "${SX[@]}" --root="$r" "$@" merge
        timed "" "${SX[@]}" --root="$r" unmerge
}

say "part 2: $RUNS x idmapped merge of a $SMALL_FILES-file vs a $NFILES-file erofs, interleaved"
# Warm-up, and check that the mapping is in effect: uid 1000 on disk appears as 0.
for spec in "$R2S few" "$R2B many"; do
        read -r r name <<<"$spec"
        timed "" "${SX[@]}" --root="$r" "$IDMAP" merge
        check_merged "$r" "idmapped merge" "usr/bin/$name-hello" "usr/share/$name/d000/f00000"
        [[ $(stat -c %u:%g "$r/usr/share/$name/d000/f00000") == 0:0 ]] ||
                die "$r: idmap not in effect ($(stat -c %u:%g "$r/usr/share/$name/d000/f00000"))"
        timed "" "${SX[@]}" --root="$r" unmerge
        check_unmerged "$r" "unmerge"
done
for ((i = 0; i < RUNS; i++)); do
        if ((i % 2 == 0)); then
                p2_block "$R2S" few 1 "$IDMAP"; p2_block "$R2B" many 1 "$IDMAP"; p2_block "$R2B" many-identity 1
        else
                p2_block "$R2B" many-identity 1; p2_block "$R2B" many 1 "$IDMAP"; p2_block "$R2S" few 1 "$IDMAP"
        fi
done
check_unmerged "$R2S" few
check_unmerged "$R2B" many

echo
echo "== 2. idmapped merge (--idmap=b:1000:0:1), erofs with $SMALL_FILES vs $NFILES files owned by 1000 ($RUNS runs, interleaved)"
read -r s_med s_min < <(stats "$D/p2-few")
read -r b_med b_min < <(stats "$D/p2-many")
read -r bi_med bi_min < <(stats "$D/p2-many-identity")
rt=$(ratio "$b_med" "$s_med")
printf 'merge: %s files %s ms, %s files %s ms, ratio = %s (target <= 1.1)   [min %s / %s ms, ratio %s]\n' \
        "$NFILES" "$b_med" "$SMALL_FILES" "$s_med" "$rt" "$b_min" "$s_min" "$(ratio "$b_min" "$s_min")"
printf 'for reference: %s-file erofs merged with identity: %s ms (min %s); idmapped/identity = %s\n' \
        "$NFILES" "$bi_med" "$bi_min" "$(ratio "$b_med" "$bi_med")"
SUMMARY+=("$(printf '%-34s %9s   (target <= 1.1)' "idmap merge ${NFILES} vs ${SMALL_FILES} files" "$rt")")

# ---------------------------------------------------------------------------------------------
# Part 3: chown-a-copy (cp -a + chown -R 0:0 + identity merge of the copy) vs idmapped merge of
# the original directory (and of the erofs image built from the same tree).

p3_copy() {             # p3_copy RECORD
        local rec=$1 cp_us ch_us mg_us
        check_unmerged "$R3C" copy
        rm -rf --one-file-system "$COPY"
        ((ON_DISK)) && sync
        timed "" cp -a "$ORIG" "$COPY"; cp_us=$LAST_US
        timed "" chown -R 0:0 "$COPY"; ch_us=$LAST_US
        timed "" "${SX[@]}" --root="$R3C" merge; mg_us=$LAST_US
        ((rec)) || { check_merged "$R3C" "copy merge" usr/share/many/d000/f00000
                     [[ $(stat -c %u "$R3C/usr/share/many/d000/f00000") == 0 ]] || die "copy is not owned by root"; }
        timed "" "${SX[@]}" --root="$R3C" unmerge
        if ((rec)); then
                echo "$cp_us" >>"$D/p3-cp"; echo "$ch_us" >>"$D/p3-chown"; echo "$mg_us" >>"$D/p3-copymerge"
                echo "$((cp_us + ch_us + mg_us))" >>"$D/p3-copy-total"
        fi
}

p3_idmap() {            # p3_idmap RECORD
        local rec=$1 f=
        check_unmerged "$R3O" orig
        ((rec)) && f=$D/p3-idmap-dir
        timed "$f" "${SX[@]}" --root="$R3O" "$IDMAP" merge
        ((rec)) || { check_merged "$R3O" "idmapped merge" usr/share/many/d000/f00000
                     [[ $(stat -c %u "$R3O/usr/share/many/d000/f00000") == 0 ]] || die "idmap not in effect"; }
        timed "" "${SX[@]}" --root="$R3O" unmerge
}

say "part 3: $COPY_RUNS x (cp -a + chown -R 0:0 + merge) vs idmapped merge of the original, after a warm-up"
p3_copy 0
p3_idmap 0
for ((i = 0; i < COPY_RUNS; i++)); do
        if ((i % 2 == 0)); then p3_copy 1; p3_idmap 1; else p3_idmap 1; p3_copy 1; fi
done
# More runs of the (fast) idmapped merge, so its median is not from 3 samples.
for ((i = 0; i < RUNS; i++)); do p3_idmap 1; done
rm -rf --one-file-system "$COPY"

echo
echo "== 3. chown-a-copy vs idmapped merge, $NFILES files on $(findmnt -n -o FSTYPE -T "$ORIG") (copy: $COPY_RUNS runs; idmap: $((COPY_RUNS + RUNS)) runs)"
read -r c_med c_min < <(stats "$D/p3-copy-total")
read -r cp_med _ < <(stats "$D/p3-cp")
read -r ch_med _ < <(stats "$D/p3-chown")
read -r cm_med _ < <(stats "$D/p3-copymerge")
read -r i_med i_min < <(stats "$D/p3-idmap-dir")
printf 'chown-a-copy: %s ms (cp -a %s + chown -R %s + merge %s), min %s ms\n' "$c_med" "$cp_med" "$ch_med" "$cm_med" "$c_min"
printf 'idmapped merge of the original directory: %s ms (min %s); of its erofs image (part 2): %s ms\n' "$i_med" "$i_min" "$b_med"
rt=$(ratio "$i_med" "$c_med")
slower=$(awk -v a="$c_med" -v b="$i_med" 'BEGIN { printf "%.0f", a / b }')
printf 'ratio idmapped merge / chown-a-copy = %s (chown-a-copy is %sx slower)\n' "$rt" "$slower"
SUMMARY+=("$(printf '%-34s %9s   (chown-a-copy is %sx slower)' "idmap merge / chown-a-copy" "$rt" "$slower")")

echo
echo "== summary (medians; $("$SYSEXT_IDMAP" --version 2>/dev/null | head -n 1), systemd $(systemd-sysext --version | awk 'NR == 1 { print $2 }'), kernel $(uname -r))"
printf '%s\n' "${SUMMARY[@]}"
say "done"
exit 0
