#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Cost of pam_sysext_idmap.so in pam_open_session + pam_close_session, in process (bench/pam-bench.c,
# compiled at run time), side by side in one run:
#   permit   a service with only "session required pam_permit.so"
#   module0  the same stack plus our module, for a user without extensions (empty system dir,
#            no user dir): the price every login pays
#   module2  the same stack and module, for a user with 2 extensions in ~/.local/share/extensions
#            (erofs, untrusted: user:NAME mapping, nosuid,nodev, own mount namespace)
#   bench/pam.sh [BUILD_DIR] [ITERATIONS]       (default: build, 500)
# Needs root, cc, libpam headers (libpam0g-dev) and mkfs.erofs. Test users and PAM services exist
# only in a private mount namespace (copies of /etc/passwd, /etc/group, /etc/pam.d bind-mounted).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
N=${2:-500}
SOURCE_ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODULE=$BUILD/src/pam/pam_sysext_idmap.so
[[ -f $MODULE ]] || { echo "missing $MODULE (ninja -C $BUILD; needs libpam)" >&2; exit 1; }
export TEST_LIB=$SOURCE_ROOT/test/integration/lib.sh SYSEXT_IDMAP=$BUILD/src/sysext-idmap/sysext-idmap
# lib.sh: enter_private_ns (re-exec in a private mount namespace), setup_scratch, make_ext_tree.
source "$TEST_LIB"
enter_private_ns "$BUILD" "$N"
require_cmd cc mkfs.erofs
setup_scratch
chmod 0755 "$SCRATCH"
cd /

cc -O2 -Wall -o "$SCRATCH/pam-bench" "$SOURCE_ROOT/bench/pam-bench.c" -lpam

HOST_ID=$(. /etc/os-release && echo "$ID")
HOST_VERSION_ID=$(. /etc/os-release && echo "${VERSION_ID:-}")

# Users bench0 (no extensions) and bench2 (two), visible only in this namespace.
cp /etc/passwd "$SCRATCH/passwd"
cp /etc/group "$SCRATCH/group"
for u in bench0:4250 bench2:4252; do
        name=${u%%:*} id=${u#*:}
        echo "$name:x:$id:$id:pam bench:$SCRATCH/home/$name:/bin/sh" >>"$SCRATCH/passwd"
        echo "$name:x:$id:" >>"$SCRATCH/group"
        install -d -o "$id" -g "$id" -m 0755 "$SCRATCH/home" "$SCRATCH/home/$name"
done
mount --bind "$SCRATCH/passwd" /etc/passwd
mount --bind "$SCRATCH/group" /etc/group

UDIR=$SCRATCH/home/bench2/.local/share/extensions
install -d -o 4252 -g 4252 -m 0755 "$SCRATCH/home/bench2/.local" "$SCRATCH/home/bench2/.local/share" "$UDIR"
for n in benchx benchy; do
        src=$SCRATCH/src-$n
        make_ext_tree "$src" "$n" "ID=$HOST_ID" "VERSION_ID=$HOST_VERSION_ID"
        mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SCRATCH/$n.raw" "$src" >/dev/null
        install -o 4252 -g 4252 -m 0644 "$SCRATCH/$n.raw" "$UDIR/$n.raw"
done
mkdir -p "$SCRATCH/sys-empty"

cp -a /etc/pam.d "$SCRATCH/pam.d"
printf 'session required pam_permit.so\n' >"$SCRATCH/pam.d/sxbench-permit"
printf 'session required pam_permit.so\nsession required %s system_dir=%s\n' \
        "$MODULE" "$SCRATCH/sys-empty" >"$SCRATCH/pam.d/sxbench-module"
mount --bind "$SCRATCH/pam.d" /etc/pam.d

echo "pam_open_session + pam_close_session, in process, $N iterations per case, interleaved"
echo "(kernel $(uname -r), $(nproc) CPUs; each iteration in a forked child, fork not timed)"
out=$("$SCRATCH/pam-bench" "$N" \
        sxbench-permit:bench0:'!/usr' \
        sxbench-module:bench0:'!/usr' \
        sxbench-module:bench2:/usr/bin/benchy-hello)
# lines: SERVICE USER MEDIAN MIN P90 (µs)
read -r _ _ p_med p_min p_p90 < <(sed -n 1p <<<"$out")
read -r _ _ m0_med m0_min m0_p90 < <(sed -n 2p <<<"$out")
read -r _ _ m2_med m2_min m2_p90 < <(sed -n 3p <<<"$out")
printf '%-44s median %8.1f µs  (min %8.1f, p90 %8.1f)\n' \
        "pam_permit only" "$p_med" "$p_min" "$p_p90" \
        "pam_permit + pam_sysext_idmap, no extensions" "$m0_med" "$m0_min" "$m0_p90" \
        "pam_permit + pam_sysext_idmap, 2 extensions" "$m2_med" "$m2_min" "$m2_p90"
added0=$(awk -v a="$m0_med" -v b="$p_med" 'BEGIN { printf "%.1f", a - b }')
added2=$(awk -v a="$m2_med" -v b="$p_med" 'BEGIN { printf "%.1f", a - b }')
verdict=$(awk -v d="$added0" 'BEGIN { print (d <= 1000 ? "ok" : "OVER") }')
echo "added by the module, no extensions: $added0 µs (median difference; target <= 1000 µs: $verdict)"
echo "added by the module, 2 extensions:  $added2 µs (median difference)"
