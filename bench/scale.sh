#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/scale.sh [--runs N] [--sd-runs N] [--counts "1 8 32 128"] [--kind erofs|squashfs]
#
# Start-up and scaling, side by side (see bench/README.md): /bin/true vs sysext-idmap --version;
# merge of 3 extensions (directory, squashfs, erofs) against systemd-sysext; merge and refresh of
# 1, 8, 32 and 128 image extensions for both tools, with the slope per extra image. With
# SYSEXT_IDMAP_BEFORE=/path/to/older/binary the older build is timed in the same loops, for a
# before/after comparison. Runs in its own private mount namespace; asserts nothing about time.

set -u -o pipefail

RUNS=15
SD_RUNS=3
COUNTS="1 8 32 128"
KIND=erofs

usage() {
        sed -n '4p' "$0" | sed 's/^# //'
        exit "${1:-0}"
}

args=("$@")
while (($# > 0)); do
        case $1 in
                --runs) RUNS=${2:?}; shift 2 ;;
                --runs=*) RUNS=${1#*=}; shift ;;
                --sd-runs) SD_RUNS=${2:?}; shift 2 ;;
                --sd-runs=*) SD_RUNS=${1#*=}; shift ;;
                --counts) COUNTS=${2:?}; shift 2 ;;
                --counts=*) COUNTS=${1#*=}; shift ;;
                --kind) KIND=${2:?}; shift 2 ;;
                --kind=*) KIND=${1#*=}; shift ;;
                -h|--help) usage 0 ;;
                *) echo "unknown argument: $1" >&2; usage 2 ;;
        esac
done
for v in RUNS SD_RUNS; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
[[ $COUNTS =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] || { echo "--counts: positive integers, space separated" >&2; exit 2; }
[[ $KIND == erofs || $KIND == squashfs ]] || { echo "--kind: erofs or squashfs" >&2; exit 2; }
set -- "${args[@]}"

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_ROOT=$(cd "$BENCH_DIR/.." && pwd)
: "${SYSEXT_IDMAP:=$SOURCE_ROOT/build/src/sysext-idmap/sysext-idmap}"
: "${SYSEXT_IDMAP_BEFORE:=}"
export SYSEXT_IDMAP SYSEXT_IDMAP_BEFORE SOURCE_ROOT

# shellcheck source=../test/integration/lib.sh
. "$SOURCE_ROOT/test/integration/lib.sh"
TEST_NAME=bench-scale

require_root
require_binary
require_cmd unshare systemd-sysext mksquashfs mkfs.erofs cc losetup
[[ -z $SYSEXT_IDMAP_BEFORE || -x $SYSEXT_IDMAP_BEFORE ]] || { echo "SYSEXT_IDMAP_BEFORE is not executable" >&2; exit 2; }
enter_private_ns "$@"
make_ns_shared_for_systemd_sysext
setup_scratch
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

# The tools: sx (this build), old (SYSEXT_IDMAP_BEFORE, optional), sd (systemd-sysext 252).
TOOLS=(sx)
[[ -n $SYSEXT_IDMAP_BEFORE ]] && TOOLS+=(old)
TOOLS+=(sd)
tool_cmd() {
        case $1 in
                sx) echo "$SYSEXT_IDMAP" ;;
                old) echo "$SYSEXT_IDMAP_BEFORE" ;;
                sd) echo systemd-sysext ;;
        esac
}
tool_name() {
        case $1 in
                sx) echo "sysext-idmap" ;;
                old) echo "sysext-idmap (before)" ;;
                sd) echo "systemd-sysext" ;;
        esac
}
D=$SCRATCH/times
mkdir -p "$D"
SUMMARY=()

say "sysext-idmap: $SYSEXT_IDMAP${SYSEXT_IDMAP_BEFORE:+; before: $SYSEXT_IDMAP_BEFORE}"
say "systemd-sysext: $(systemd-sysext --version | head -n 1)"
say "kernel $(uname -r), $(nproc) cpus; runs=$RUNS sd-runs=$SD_RUNS counts=$COUNTS kind=$KIND; scratch $SCRATCH"

# ---------------------------------------------------------------------------------------------
# Part 1: start-up. /bin/true, --version of each build, interleaved.

say "part 1: $((RUNS * 10)) x /bin/true and --version, interleaved"
for ((i = 0; i < RUNS * 10; i++)); do
        timed "$D/true" /bin/true
        timed "$D/version-sx" "$SYSEXT_IDMAP" --version
        [[ -n $SYSEXT_IDMAP_BEFORE ]] && timed "$D/version-old" "$SYSEXT_IDMAP_BEFORE" --version
done
echo
echo "== 1. start-up: spawning /bin/true vs --version ($((RUNS * 10)) runs)"
read -r t_med t_min < <(stats "$D/true")
read -r v_med v_min < <(stats "$D/version-sx")
printf '/bin/true %s ms (min %s); sysext-idmap --version %s ms (min %s): %s x /bin/true\n' \
        "$t_med" "$t_min" "$v_med" "$v_min" "$(ratio "$v_med" "$t_med")"
SUMMARY+=("$(printf '%-46s %9s' "--version / /bin/true" "$(ratio "$v_med" "$t_med")")")
if [[ -n $SYSEXT_IDMAP_BEFORE ]]; then
        read -r o_med o_min < <(stats "$D/version-old")
        printf 'before: --version %s ms (min %s): %s x /bin/true; after/before = %s\n' \
                "$o_med" "$o_min" "$(ratio "$o_med" "$t_med")" "$(ratio "$v_med" "$o_med")"
        SUMMARY+=("$(printf '%-46s %9s' "--version / /bin/true, before" "$(ratio "$o_med" "$t_med")")")
fi

# ---------------------------------------------------------------------------------------------
# Part 2: merge of 3 extensions (directory, squashfs, erofs), as in run.sh part 1.

R3=$SCRATCH/root3
make_root "$R3"
make_ext_dir "$R3/var/lib/extensions/bdir" bdir
make_ext_squashfs "$R3/var/lib/extensions/bsquash.raw" bsquash
make_ext_erofs "$R3/var/lib/extensions/berofs.raw" berofs
P3_FILES=(usr/bin/bdir-hello usr/bin/bsquash-hello usr/bin/berofs-hello opt/berofs/data)

# check_result TOOL ROOT WHAT FILE...: the merge is there with every file. systemd-sysext 252 is
# only noted, not stopped: with many images it merges some of them and still exits 0 (see README).
NOTES=()
check_result() {
        local t=$1 r=$2 what=$3 f n=0 missing=0
        shift 3
        [[ $t != sd ]] && { check_merged "$r" "$t $what" "$@"; return; }
        for f in "$r"/var/lib/extensions/*.raw "$r"/var/lib/extensions/*/; do
                [[ -e $f ]] || continue
                n=$((n + 1))
                f=${f%/}; f=${f##*/}; f=${f%.raw}
                [[ -e $r/usr/bin/$f-hello ]] || missing=$((missing + 1))
        done
        ((missing == 0)) || NOTES+=("systemd-sysext $what: only $((n - missing)) of $n extensions visible (exit status 0)")
}

# cycle TOOL ROOT TAG RECORD FILE...: merge, refresh (nothing changed: ours skips), refresh
# --always-refresh (ours rebuilds; not for systemd-sysext 252, whose refresh always rebuilds),
# unmerge; times into $D/TAG-TOOL-{merge,refresh,rebuild}.
cycle() {
        local t=$1 r=$2 tag=$3 rec=$4 cmd f=
        shift 4
        cmd=$(tool_cmd "$t")
        check_unmerged "$r" "$t"
        ((rec)) && f=$D/$tag-$t-merge
        timed "$f" "$cmd" --root="$r" merge
        ((rec)) || check_result "$t" "$r" "$tag merge" "$@"
        ((rec)) && f=$D/$tag-$t-refresh
        timed "$f" "$cmd" --root="$r" refresh
        ((rec)) || check_result "$t" "$r" "$tag refresh" "$@"
        if [[ $t != sd ]]; then         # systemd-sysext 252 rebuilds on every refresh anyway
                ((rec)) && f=$D/$tag-$t-rebuild
                timed "$f" "$cmd" --root="$r" --always-refresh refresh
                ((rec)) || check_result "$t" "$r" "$tag refresh --always-refresh" "$@"
        fi
        timed "" "$cmd" --root="$r" unmerge
        check_unmerged "$r" "$t unmerge"
}

# rounds ROOT TAG SX_RUNS FILE...: warm-up, then SX_RUNS rounds, the tools' order rotating; sd
# only in the first SD_RUNS rounds (systemd-sysext takes seconds with many images).
rounds() {
        local r=$1 tag=$2 n=$3 i k t
        shift 3
        for t in "${TOOLS[@]}"; do cycle "$t" "$r" "$tag" 0 "$@"; done
        for ((i = 0; i < n; i++)); do
                for ((k = 0; k < ${#TOOLS[@]}; k++)); do
                        t=${TOOLS[(i + k) % ${#TOOLS[@]}]}
                        [[ $t == sd ]] && ((i >= SD_RUNS)) && continue
                        cycle "$t" "$r" "$tag" 1 "$@"
                done
        done
}

say "part 2: $RUNS x (merge, refresh, unmerge) of 3 extensions (sd: $SD_RUNS)"
SD_RUNS_SAVED=$SD_RUNS
SD_RUNS=$RUNS          # 3 extensions: systemd-sysext is quick enough for every round
rounds "$R3" three "$RUNS" "${P3_FILES[@]}"
SD_RUNS=$SD_RUNS_SAVED
echo
echo "== 2. merge of 3 extensions (directory, squashfs, erofs) vs systemd-sysext 252 ($RUNS runs, interleaved)"
read -r sd_med _ < <(stats "$D/three-sd-merge")
read -r sdr_med _ < <(stats "$D/three-sd-refresh")
for t in "${TOOLS[@]}"; do
        [[ $t == sd ]] && continue
        read -r m_med m_min < <(stats "$D/three-$t-merge")
        read -r f_med f_min < <(stats "$D/three-$t-refresh")
        printf '%-22s merge %s ms (min %s) = %s x systemd-sysext (%s ms); refresh %s ms = %s x systemd-sysext (%s ms), %s x its merge\n' \
                "$(tool_name "$t"):" "$m_med" "$m_min" "$(ratio "$m_med" "$sd_med")" "$sd_med" \
                "$f_med" "$(ratio "$f_med" "$sdr_med")" "$sdr_med" "$(ratio "$f_med" "$m_med")"
        SUMMARY+=("$(printf '%-46s %9s   %s' "merge 3 / systemd-sysext, $(tool_name "$t")" "$(ratio "$m_med" "$sd_med")" \
                "$([[ $t == sx ]] && echo '(target <= 0.03)')")")
done

# ---------------------------------------------------------------------------------------------
# Part 3: 1 .. 128 image extensions of one kind.

make_image() {          # make_image OUT NAME
        if [[ $KIND == erofs ]]; then make_ext_erofs "$@"; else make_ext_squashfs "$@"; fi
}

for n in $COUNTS; do
        r=$SCRATCH/root-$n
        make_root "$r"
        for ((j = 0; j < n; j++)); do
                make_image "$r/var/lib/extensions/e$j.raw" "e$j"
        done
done
sync
say "part 3: $RUNS x (merge, refresh, unmerge) of $COUNTS $KIND extensions (sd: $SD_RUNS)"
for n in $COUNTS; do
        rounds "$SCRATCH/root-$n" "n$n" "$RUNS" usr/bin/e0-hello "usr/bin/e$((n - 1))-hello"
        say "  $n done"
done
echo
echo "== 3. merge and refresh of N $KIND extensions (median ms; sysext-idmap $RUNS runs, systemd-sysext $SD_RUNS)"
echo "   refresh: nothing changed (ours skips); rebuild: refresh --always-refresh (systemd-sysext 252's refresh always rebuilds)"
# ops TOOL: what was timed for it
ops() { if [[ $1 == sd ]]; then echo merge refresh; else echo merge refresh rebuild; fi; }
printf '%6s' N
for t in "${TOOLS[@]}"; do
        for op in $(ops "$t"); do printf ' %24s' "$(tool_name "$t") $op"; done
done
printf ' %12s %14s %14s\n' "merge sx/sd" "refresh/merge" "rebuild/merge"
first=
last=
for n in $COUNTS; do
        printf '%6s' "$n"
        for t in "${TOOLS[@]}"; do
                for op in $(ops "$t"); do
                        read -r v _ < <(stats "$D/n$n-$t-$op")
                        printf ' %24s' "$v"
                done
        done
        read -r m _ < <(stats "$D/n$n-sx-merge")
        read -r f _ < <(stats "$D/n$n-sx-refresh")
        read -r b _ < <(stats "$D/n$n-sx-rebuild")
        read -r s _ < <(stats "$D/n$n-sd-merge")
        printf ' %12s %14s %14s\n' "$(ratio "$m" "$s")" "$(ratio "$f" "$m")" "$(ratio "$b" "$m")"
        [[ -z $first ]] && first=$n
        last=$n
done
if [[ $first != "$last" ]]; then
        for t in "${TOOLS[@]}"; do
                for op in $(ops "$t"); do
                        read -r a _ < <(stats "$D/n$first-$t-$op")
                        read -r b _ < <(stats "$D/n$last-$t-$op")
                        slope=$(awk -v a="$a" -v b="$b" -v x="$first" -v y="$last" 'BEGIN { printf "%.3f", (b - a) / (y - x) }')
                        printf 'slope %-22s %-7s %s ms per extra image (%s -> %s)\n' "$(tool_name "$t")" "$op" "$slope" "$first" "$last"
                        target=
                        [[ $t == sx ]] && target='(target <= 0.2)'
                        SUMMARY+=("$(printf '%-46s %9s   %s' "$op slope ms/image, $(tool_name "$t")" "$slope" "$target")")
                done
        done
fi
for n in $COUNTS; do
        read -r m _ < <(stats "$D/n$n-sx-merge")
        read -r f _ < <(stats "$D/n$n-sx-refresh")
        read -r b _ < <(stats "$D/n$n-sx-rebuild")
        SUMMARY+=("$(printf '%-46s %9s   (target <= 1.2)' "refresh / merge, $n images, sysext-idmap" "$(ratio "$f" "$m")")")
        SUMMARY+=("$(printf '%-46s %9s   (rebuild: the old tree torn down too)' "rebuild / merge, $n images, sysext-idmap" "$(ratio "$b" "$m")")")
done

if ((${#NOTES[@]} > 0)); then
        echo
        echo "== notes"
        printf '%s\n' "${NOTES[@]}"
fi

echo
echo "== summary (medians; $("$SYSEXT_IDMAP" --version 2>/dev/null | head -n 1), systemd $(systemd-sysext --version | awk 'NR == 1 { print $2 }'), kernel $(uname -r))"
printf '%s\n' "${SUMMARY[@]}"
say "done"
exit 0
