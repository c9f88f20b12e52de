# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers shared by bench/run.sh and bench/scale.sh (source after test/integration/lib.sh, in the
# private namespace, after setup_scratch): the timer, statistics and merge checks.

T0=$EPOCHREALTIME
bc_sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
say() { printf '[%6.1fs] %s\n' "$(bc_sub "$EPOCHREALTIME" "$T0")" "$*"; }
die() { echo "bench: $*" >&2; exit 1; }

# Timing: a tiny C helper forks, execs and waits for the command, and writes its wall time (µs)
# on fd 3, so neither bash's own fork nor a date(1) process is inside the measured interval.
TIMEIT=$SCRATCH/timeit
cc -O2 -o "$TIMEIT" "$BENCH_DIR/timeit.c" || die "cannot build the timer"

# timed FILE CMD...: run CMD (stdout/stderr to $SCRATCH/cmd.log), append its µs to FILE.
timed() {
        local file=$1 us
        shift
        if ! us=$("$TIMEIT" "$@" 3>&1 >>"$SCRATCH/cmd.log" 2>&1); then
                tail -n 20 "$SCRATCH/cmd.log" >&2
                die "failed: $(_show "$@")"
        fi
        [[ -n $file ]] && echo "$us" >>"$file"
        LAST_US=$us
}

# stats FILE -> "median min" in ms (3 decimals)
stats() {
        sort -n "$1" | awk '{ v[NR] = $1 } END {
                if (NR == 0) { print "nan nan"; exit }
                m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "%.3f %.3f\n", m / 1000, v[1] / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "nan"; else if (a / b < 0.01) printf "%.2e", a / b; else printf "%.3f", a / b }'; }

# overlay_at PATH: is an overlay mounted exactly at PATH in this namespace?
overlay_at() {
        awk -v p="$1" '$5 == p { for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "overlay") f = 1; break } }
                       END { exit !f }' /proc/self/mountinfo
}

check_unmerged() {      # check_unmerged ROOT WHAT
        local h
        for h in usr opt; do
                overlay_at "$1/$h" && die "$2: $1/$h is still merged"
        done
        return 0
}

check_merged() {        # check_merged ROOT WHAT FILE...: overlays on usr and opt, files visible
        local r=$1 what=$2 h f
        shift 2
        for h in usr opt; do
                overlay_at "$r/$h" || die "$what: no overlay on $r/$h after merge"
        done
        for f in "$@"; do
                [[ -e $r/$f ]] || die "$what: $f not visible after merge"
        done
}
