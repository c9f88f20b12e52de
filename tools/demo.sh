#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Show sysext-idmap on sample images, on Debian 12. As root:  tools/demo.sh
# (an ordinary user: sudo tools/demo.sh or su -c tools/demo.sh).
# Builds the tool, makes a directory, a squashfs, an erofs and a GPT DDI (systemd-repart) image,
# all owned by an ordinary uid, in a scratch root; shows `list` and `dissect`, merges them idmapped
# (on-disk uid 1000 appears as root), runs a binary from each, refreshes and unmerges, all inside
# a throwaway private mount namespace. Nothing outside the scratch directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE_ROOT=$PWD
export SOURCE_ROOT
export SYSEXT_IDMAP=$SOURCE_ROOT/build/src/sysext-idmap/sysext-idmap

if [[ ${SYSEXT_IDMAP_TEST_IN_NS:-} != 1 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
                echo "demo.sh needs root (loop devices, mounts, systemd-repart): run it in a root shell, or as su -c $0" >&2
                exit 1
        fi
        PACKAGES=(meson ninja-build pkg-config gcc libsystemd-dev libcryptsetup-dev libblkid-dev
                  libssl-dev libjson-c-dev squashfs-tools erofs-utils cryptsetup-bin
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
step "A scratch root at $R (ID=debian VERSION_ID=12), with four extensions built as uid 1000"
make_root "$R"
export EXT_UID=1000 EXT_GID=1000
make_ext_dir "$E/hello-dir" hello-dir
make_ext_squashfs "$E/hello-squash.raw" hello-squash
make_ext_erofs "$E/hello-erofs_1.0.raw" hello-erofs
make_ext_ddi --sign "$E/hello-ddi.raw" hello-ddi
# Trust the key that signed hello-ddi.raw inside the scratch root (--root=$R looks in $R/etc/verity.d).
mkdir -p "$R/etc/verity.d"
cp "$TEST_CERT" "$R/etc/verity.d/demo.crt"
ls -l "$E"

step "list"
show "$SYSEXT_IDMAP" --root="$R" list
show "$SYSEXT_IDMAP" --root="$R" --json=pretty list

step "dissect each image"
for img in "$E"/*; do
        show "$SYSEXT_IDMAP" --root="$R" dissect "$img"
done
show "$SYSEXT_IDMAP" --root="$R" --json=pretty dissect "$E/hello-ddi.raw"
echo "(repart's root hash of hello-ddi.raw: $DDI_ROOTHASH)"

step "merge: every image becomes its own idmapped layer (on-disk uid 1000 appears as root)"
show "$SYSEXT_IDMAP" --root="$R" --idmap=b:1000:0:1 merge
show grep " $R/" /proc/self/mountinfo
echo "On disk, the images' files belong to the unprivileged builder:"
show stat -c '%U(%u):%G(%g) %n' "$E/hello-dir/usr/bin/hello-dir-hello"
echo "Through the merge, the same files are root's; nothing was chowned or copied:"
show stat -c '%U(%u):%G(%g) %n' "$R"/usr/bin/*-hello
step "run a binary from each extension"
for b in "$R"/usr/bin/*-hello; do
        show "$b"
done
step "status"
show "$SYSEXT_IDMAP" --root="$R" status
show "$SYSEXT_IDMAP" --root="$R" --json=short status

step "refresh atomically after removing one extension (MOVE_MOUNT_BENEATH, no gap for readers)"
mv "$E/hello-squash.raw" "$SCRATCH/"
show "$SYSEXT_IDMAP" --root="$R" --idmap=b:1000:0:1 refresh
show ls "$R/usr/bin"

step "unmerge"
show "$SYSEXT_IDMAP" --root="$R" unmerge
show ls "$R/usr/bin"

step "done; scratch files and loop devices are removed on exit"
