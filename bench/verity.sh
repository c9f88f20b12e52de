#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Userspace verity verification throughput: our code path (bench-verity: loop devices +
# libcryptsetup) against `veritysetup verify` on the same image, side by side in one run.
#   bench/verity.sh [BUILD_DIR] [SIZE_MIB] [RUNS]      (root: loop devices)
set -euo pipefail
BUILD=${1:-build}
SIZE=${2:-256}
RUNS=${3:-3}
BENCH=$BUILD/test/bench-verity
[ -x "$BENCH" ] || { echo "missing $BENCH (ninja -C $BUILD)" >&2; exit 1; }
command -v veritysetup >/dev/null || { echo "veritysetup missing" >&2; exit 1; }

T=$(mktemp -d /var/tmp/bench-verity-XXXXXX)
trap 'rm -rf "$T"' EXIT
head -c $((SIZE * 1024 * 1024)) /dev/urandom > "$T/data.img"
veritysetup format "$T/data.img" "$T/hash.img" --root-hash-file="$T/roothash" >/dev/null
H=$(cat "$T/roothash")
# warm the page cache for both candidates alike
cat "$T/data.img" "$T/hash.img" > /dev/null

now() { date +%s.%N; }
best_ours=999999 best_vs=999999
for i in $(seq "$RUNS"); do
        s=$(now); veritysetup verify "$T/data.img" "$T/hash.img" "$H"; e=$(now)
        vs=$(echo "$e - $s" | bc -l)
        s=$(now); "$BENCH" "$T/data.img" "$T/hash.img" "$H" >/dev/null; e=$(now)
        ours=$(echo "$e - $s" | bc -l)
        printf 'run %d: veritysetup verify %.3f s, sysext-idmap %.3f s\n' "$i" "$vs" "$ours"
        best_vs=$(echo "if ($vs < $best_vs) $vs else $best_vs" | bc -l)
        best_ours=$(echo "if ($ours < $best_ours) $ours else $best_ours" | bc -l)
done
mbs_vs=$(echo "$SIZE / $best_vs" | bc -l)
mbs_ours=$(echo "$SIZE / $best_ours" | bc -l)
printf 'image: %d MiB random data, sha256, 4096-byte blocks, best of %d (whole process, warm cache)\n' "$SIZE" "$RUNS"
printf 'veritysetup verify: %8.1f MiB/s\n' "$mbs_vs"
printf 'sysext-idmap:       %8.1f MiB/s\n' "$mbs_ours"
printf 'ratio (ours / veritysetup): %.2f (target >= 0.90)\n' "$(echo "$mbs_ours / $mbs_vs" | bc -l)"
