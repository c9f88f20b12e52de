#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/broker.sh [--sandboxes N] [--files N] [--file-kib N]
#
# Shared layers through the broker (issue 14), side by side in one run: N sandboxes (default 32)
# of N distinct ordinary users, each `sysext-idmap run` on one squashfs image (default 10,000
# files of 25 KiB, ~250 MiB, incompressible) through sysext-idmapd, each reading the whole tree
# and staying alive; then the same N sandboxes as root's `run --private-users=pick` without the
# daemon (today's path: every sandbox mounts its own copy). Prints loop devices in use, page cache
# growth (N sandboxes against one), start time of the Nth sandbox against the 1st, and the start
# time of an unprivileged run against root's. Runs in its own private mount namespace (users in a
# private /etc/passwd, the image and the daemon below a private /run); asserts nothing about time.

set -u -o pipefail

N=32
FILES=10000
FILE_KIB=25

usage() {
        sed -n '4p' "$0" | sed 's/^# //'
        exit "${1:-0}"
}

args=("$@")
while (($# > 0)); do
        case $1 in
                --sandboxes) N=${2:?}; shift 2 ;;
                --sandboxes=*) N=${1#*=}; shift ;;
                --files) FILES=${2:?}; shift 2 ;;
                --files=*) FILES=${1#*=}; shift ;;
                --file-kib) FILE_KIB=${2:?}; shift 2 ;;
                --file-kib=*) FILE_KIB=${1#*=}; shift ;;
                -h|--help) usage 0 ;;
                *) echo "unknown argument: $1" >&2; usage 2 ;;
        esac
done
for v in N FILES FILE_KIB; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
set -- "${args[@]}"

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_ROOT=$(cd "$BENCH_DIR/.." && pwd)
: "${SYSEXT_IDMAP:=$SOURCE_ROOT/build/src/sysext-idmap/sysext-idmap}"
: "${SYSEXT_IDMAPD:=$SOURCE_ROOT/build/src/daemon/sysext-idmapd}"
export SYSEXT_IDMAP SYSEXT_IDMAPD SOURCE_ROOT

# shellcheck source=../test/integration/lib.sh
. "$SOURCE_ROOT/test/integration/lib.sh"
TEST_NAME=bench-broker

require_root
require_binary
require_cmd unshare mksquashfs setpriv losetup python3
[[ -x $SYSEXT_IDMAPD ]] || { echo "no sysext-idmapd at $SYSEXT_IDMAPD (build it first)" >&2; exit 2; }
enter_private_ns "$@"
setup_scratch
chmod 0755 "$SCRATCH"
# shellcheck source=lib.sh
. "$BENCH_DIR/lib.sh"

# The "host": below our private /run, so every path component is root's (the daemon's trust rule).
ROOT=/run/bench-broker-root
IMG=$ROOT/var/lib/extensions/big.raw
SOCK=/run/bench-broker.sock
make_root "$ROOT"
say "building the image: $FILES files of $FILE_KIB KiB"
src=$SCRATCH/big
make_ext_tree "$src" big
python3 - "$src/usr/share/big" "$FILES" "$FILE_KIB" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(d, "%03d" % (i // 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
mksquashfs "$src" "$IMG" -noappend -quiet -no-progress -all-root >/dev/null || die "mksquashfs failed"
rm -rf "$src"
say "image: $(du -m "$IMG" | cut -f1) MiB"

for ((i = 0; i < N; i++)); do
        add_test_user "sxbench$i" $((62100 + i)) $((62100 + i)) /nonexistent /usr/sbin/nologin
done

cached_kib() { awk '/^Cached:/ { print $2 }' /proc/meminfo; }
loops_of_image() { losetup -j "$IMG" 2>/dev/null | grep -c . || true; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# The sandbox command: say when it started, read the whole tree, say so, stay until killed.
SANDBOX_CMD='echo started; find /usr/share/big -type f -exec cat {} + >/dev/null; echo read; exec sleep 100000'
PIDS=()

# start_sandbox I KIND: start sandbox I (KIND: user = sxbenchI through the broker, root = root's
# run --private-users=pick without a daemon); wait until it has read the tree; its start time (µs
# from launch until "started") goes to $D/KIND-start.
D=$SCRATCH/times
mkdir -p "$D"
start_sandbox() {
        local i=$1 kind=$2 out=$SCRATCH/sb-$kind-$i.out t0 t1 pid
        : >"$out"
        t0=${EPOCHREALTIME/./}
        if [[ $kind == user ]]; then
                setpriv --reuid="sxbench$i" --regid="sxbench$i" --clear-groups -- \
                        "$SYSEXT_IDMAP" run --broker="$SOCK" --image="$IMG" -- sh -c "$SANDBOX_CMD" >"$out" 2>&1 &
        else
                "$SYSEXT_IDMAP" run --private-users=pick --image="$IMG" -- sh -c "$SANDBOX_CMD" >"$out" 2>&1 &
        fi
        pid=$!
        PIDS+=("$pid")
        # Bounded by progress: the sandbox either reports or dies.
        until grep -qx started "$out"; do
                kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; die "$kind sandbox $i died before it started"; }
                sleep 0.001
        done
        t1=${EPOCHREALTIME/./}
        echo $((t1 - t0)) >>"$D/$kind-start"
        until grep -qx read "$out"; do
                kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; die "$kind sandbox $i died while reading"; }
                sleep 0.01
        done
}

stop_sandboxes() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
        PIDS=()
}

# round KIND: N sandboxes, one after the other, all alive at the end. Sets LOOPS, GROWTH1, GROWTHN.
round() {
        local kind=$1 c0 i
        drop_caches
        # what every sandbox loads anyway (the binaries, find, cat, sh) is back in the cache first
        "$SYSEXT_IDMAP" --version >/dev/null
        sh -c 'find /usr/share/doc -maxdepth 0 >/dev/null; cat /dev/null; sleep 0'
        c0=$(cached_kib)
        for ((i = 0; i < N; i++)); do
                start_sandbox "$i" "$kind"
                ((i == 0)) && GROWTH1=$(($(cached_kib) - c0))
        done
        GROWTHN=$(($(cached_kib) - c0))
        LOOPS=$(loops_of_image)
        stop_sandboxes
}

"$SYSEXT_IDMAPD" --listen="$SOCK" --root="$ROOT" --idle-exit=0 >"$SCRATCH/daemon.log" 2>&1 &
DAEMON=$!
trap 'stop_sandboxes; kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; _cleanup' EXIT
until [[ -S $SOCK ]]; do
        kill -0 "$DAEMON" 2>/dev/null || { cat "$SCRATCH/daemon.log" >&2; die "the daemon died at start"; }
        sleep 0.01
done

say "part 1: $N ordinary users' sandboxes through sysext-idmapd"
round user
U_LOOPS=$LOOPS U_G1=$GROWTH1 U_GN=$GROWTHN
say "part 2: $N root sandboxes, run --private-users=pick, no daemon (today's path)"
round root
R_LOOPS=$LOOPS R_G1=$GROWTH1 R_GN=$GROWTHN


first_last() {  # first_last FILE -> "first last median" in ms
        local first last med
        first=$(head -n 1 "$1")
        last=$(tail -n 1 "$1")
        med=$(sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        awk -v a="$first" -v b="$last" -v m="$med" 'BEGIN { printf "%.2f %.2f %.2f\n", a / 1000, b / 1000, m / 1000 }'
}
read -r u_first u_last u_med < <(first_last "$D/user-start")
read -r r_first r_last r_med < <(first_last "$D/root-start")

echo
echo "== broker: $N sandboxes on one $(du -m "$IMG" | cut -f1) MiB squashfs image ($FILES files), kernel $(uname -r), $(nproc) cpus"
printf '%-58s %14s %14s\n' "" "users+daemon" "root, pick"
printf '%-58s %14s %14s\n' "loop devices backing the image, all $N alive" "$U_LOOPS" "$R_LOOPS"
printf '%-58s %14s %14s\n' "page cache growth, 1 sandbox (MiB)" "$((U_G1 / 1024))" "$((R_G1 / 1024))"
printf '%-58s %14s %14s\n' "page cache growth, $N sandboxes (MiB)" "$((U_GN / 1024))" "$((R_GN / 1024))"
printf '%-58s %14s %14s\n' "  $N sandboxes / 1 sandbox" "$(ratio "$U_GN" "$U_G1")" "$(ratio "$R_GN" "$R_G1")"
printf '%-58s %14s %14s\n' "start time, 1st sandbox (ms)" "$u_first" "$r_first"
printf '%-58s %14s %14s\n' "start time, ${N}th sandbox (ms)" "$u_last" "$r_last"
printf '%-58s %14s %14s\n' "  ${N}th / 1st" "$(ratio "$u_last" "$u_first")" "$(ratio "$r_last" "$r_first")"
printf '%-58s %14s %14s\n' "start time, median (ms)" "$u_med" "$r_med"
echo
echo "== summary"
printf '%-58s %9s   %s\n' "loop devices, $N user sandboxes" "$U_LOOPS" "(goal 1; root's path: $R_LOOPS)"
printf '%-58s %9s   %s\n' "page cache, $N user sandboxes / 1" "$(ratio "$U_GN" "$U_G1")" "(goal <= 1.2)"
printf '%-58s %9s   %s\n' "start time, ${N}th / 1st user sandbox" "$(ratio "$u_last" "$u_first")" "(goal <= 1.1)"
printf '%-58s %9s   %s\n' "start time, unprivileged run / root run --private-users=pick" "$(ratio "$u_med" "$r_med")" "(goal <= 1.5)"
say "done"
exit 0
