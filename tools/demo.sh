#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Show sysext-idmap on sample images:  sudo tools/demo.sh
# Builds the tool, makes a directory, a squashfs, an erofs and a GPT DDI (systemd-repart) image in
# a scratch root, and runs `list` and `dissect` on them inside a throwaway private mount
# namespace. Nothing outside the scratch directory and the namespace is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE_ROOT=$PWD
export SOURCE_ROOT
export SYSEXT_IDMAP=$SOURCE_ROOT/build/src/sysext-idmap/sysext-idmap

if [[ ${SYSEXT_IDMAP_TEST_IN_NS:-} != 1 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
                echo "demo.sh needs root (loop devices, mounts, systemd-repart): sudo $0" >&2
                exit 1
        fi
        PACKAGES=(meson ninja-build pkg-config gcc libsystemd-dev libcryptsetup-dev libblkid-dev
                  libmount-dev libssl-dev libjson-c-dev squashfs-tools erofs-utils cryptsetup-bin
                  fdisk util-linux systemd python3 openssl)
        missing=()
        for p in "${PACKAGES[@]}"; do
                [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
        done
        if ((${#missing[@]} > 0)); then
                echo "installing: ${missing[*]}"
                apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
        fi
        [[ -d build/meson-private ]] || meson setup build
        ninja -C build
fi

# lib.sh gives us the image builders, the private namespace and the cleanup trap.
source test/integration/lib.sh
enter_private_ns "$@"
setup_scratch

step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$(_show "$@")"; "$@" || echo "(exit $?)"; }

R=$SCRATCH/root
E=$R/var/lib/extensions
step "A scratch root at $R (ID=debian VERSION_ID=12), with four extensions"
make_root "$R"
make_ext_dir "$E/hello-dir" hello-dir
make_ext_squashfs "$E/hello-squash.raw" hello-squash
make_ext_erofs "$E/hello-erofs_1.0.raw" hello-erofs
make_ext_ddi --sign "$E/hello-ddi.raw" hello-ddi
ls -l "$E"

step "list"
show "$SYSEXT_IDMAP" --root="$R" list
show "$SYSEXT_IDMAP" --root="$R" --json=pretty list

step "dissect each image"
for img in "$E"/*; do
        show "$SYSEXT_IDMAP" dissect "$img"
done
show "$SYSEXT_IDMAP" --json=pretty dissect "$E/hello-ddi.raw"
echo "(repart's root hash of hello-ddi.raw: $DDI_ROOTHASH)"

# ---------------------------------------------------------------------------------------------
# MERGE DEMO GOES HERE (lead): merge with an --idmap, show $R/usr/bin/*-hello and `status`,
# refresh, unmerge. We are in a private mount namespace with --root=$R, so it is safe.
# ---------------------------------------------------------------------------------------------

step "status"
show "$SYSEXT_IDMAP" --root="$R" status

step "done; scratch files and loop devices are removed on exit"
