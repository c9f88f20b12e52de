# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Shared by test/vm/run.sh (host side: kernel, initrd, disk, qemu) and test/vm/stage-guest.sh
# (called by mkosi.finalize: project, fixtures and test units into the guest tree).

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_SRC=$(cd "$VM_DIR/../.." && pwd)
# Everything generated goes here (ignored by git: /build*/).
: "${SYSEXT_IDMAP_VM_WORK:=$VM_SRC/build-vm}"
export SYSEXT_IDMAP_VM_WORK

# Kernel modules the guest needs, with their dependencies resolved by modprobe: the root disk
# (virtio, ext4), what sysext-idmap uses (loop, dm-verity, overlay, squashfs, erofs) and what
# systemd's default units would otherwise fail to load (autofs4, configfs, fuse), and what
# systemd-homed's LUKS homes need (dm-crypt, xts; libcryptsetup encrypts the LUKS2 key slots
# through the kernel's crypto API: algif_skcipher, algif_hash).
VM_MODULES=(virtio_pci virtio_blk ext4 loop dm-verity overlay squashfs erofs autofs4 configfs fuse
            dm-crypt xts algif_skcipher algif_hash)

# The kernel to boot: SYSEXT_IDMAP_VM_KVER, else the newest /boot/vmlinuz-*-amd64 (Debian's
# linux-image-amd64) whose modules are installed.
vm_kernel_version() {
        if [[ -n ${SYSEXT_IDMAP_VM_KVER:-} ]]; then
                echo "$SYSEXT_IDMAP_VM_KVER"
                return 0
        fi
        local f v best=
        for f in /boot/vmlinuz-*-amd64; do
                [[ -e $f ]] || continue
                v=${f#/boot/vmlinuz-}
                [[ -d /lib/modules/$v/kernel ]] || continue
                if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n1) == "$v" ]]; then
                        best=$v
                fi
        done
        [[ -n $best ]] || return 1
        echo "$best"
}

# The .ko files for VM_MODULES in load order (dependencies first, each once), as paths.
vm_module_files() {
        local kver=$1 m line f
        declare -A seen=()
        for m in "${VM_MODULES[@]}"; do
                while read -r line; do
                        [[ $line == insmod\ * ]] || continue
                        f=${line#insmod }
                        f=${f%% *}
                        [[ -n ${seen[$f]:-} ]] && continue
                        seen[$f]=1
                        echo "$f"
                done < <(modprobe -S "$kver" --show-depends "$m" 2>/dev/null)
        done
}

# The mirror the host's apt uses for Debian itself (not -security), for mkosi/debootstrap.
vm_host_mirror() {
        local uri
        uri=$( { grep -hE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{ print $2 }'
                 grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                        sed -E 's/\[[^]]*\]//' | awk '{ print $2 }'
               } | grep -E '/debian/?$' | grep -v -- '-security' | head -n1)
        echo "${uri:-http://deb.debian.org/debian}"
}
