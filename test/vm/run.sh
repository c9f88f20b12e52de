#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The VM test: sysext-idmap under systemd as PID 1 on Debian's own kernel (linux-image-amd64,
# 6.1 in bookworm: kernel dm-verity, GPT partition scanning, overlayfs without fd layers, no
# MOVE_MOUNT_BENEATH, squashfs not idmappable), in qemu with TCG.
#
#   sudo test/vm/run.sh [--rebuild]
#
# Phases (each timed):
#   1. kernel   /boot/vmlinuz-KVER decompressed to an ELF vmlinux (TCG boots it faster)
#   2. initrd   busybox-static + the modules, uncompressed; it mounts /dev/vda and switch_roots
#               to systemd
#   3. guest    mkosi 14 builds the bookworm tree from mkosi.conf; mkosi.finalize ->
#               stage-guest.sh installs the project (meson install), fixtures and test units.
#               The package-only tree is reused while mkosi.conf/mkosi.skeleton are unchanged
#               (only stage-guest.sh reruns); --rebuild forces mkosi.
#   4. disk     mkfs.ext4 -d of the tree
#   5. boot     qemu; the guest test (guest/vmtest.sh) writes ok/not ok lines to ttyS1 (the file
#               results.log), powers off, and the shutdown check adds its lines
# Files: $SYSEXT_IDMAP_VM_WORK (default build-vm/): console.log, results.log, ...
# Environment: SYSEXT_IDMAP_VM_STALL (s, default 420): qemu is stopped when the guest has written
# nothing to the console or the results for that long (no progress: every wait in the guest is
# shorter, and a slow boot still prints systemd's status lines); SYSEXT_IDMAP_VM_TIMEOUT (s,
# default 1800): the outer limit on qemu's wall time however much the guest writes;
# SYSEXT_IDMAP_VM_SMP (default: nproc, at most 4), SYSEXT_IDMAP_VM_MEM (MiB, default 1536),
# SYSEXT_IDMAP_VM_KVER (kernel version to boot).
#
# Exit status 0 if every check passed, 1 if one failed, 77 if the test could not run here (the
# reason is printed). The last line is always "vm: N passed, N failed, N skipped".
set -uo pipefail

# shellcheck source=test/vm/lib.sh
. "$(dirname "$0")/lib.sh"

REBUILD=0
for a in "$@"; do
        case $a in
                --rebuild) REBUILD=1 ;;
                -h|--help) sed -n '3,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
                *) echo "unknown argument: $a" >&2; exit 2 ;;
        esac
done

W=$SYSEXT_IDMAP_VM_WORK
TMO=${SYSEXT_IDMAP_VM_TIMEOUT:-1800}
STALL=${SYSEXT_IDMAP_VM_STALL:-420}
SMP=${SYSEXT_IDMAP_VM_SMP:-$(n=$(nproc); ((n > 4)) && n=4; echo "$n")}
MEM=${SYSEXT_IDMAP_VM_MEM:-1536}
T_START=$SECONDS
T_PHASE=$SECONDS

summary() { echo "vm: $1 passed, $2 failed, $3 skipped"; }
skip_all() { echo "SKIP: vm: $*"; summary 0 0 1; exit 77; }
fail_all() { echo "FAIL: vm: $*"; summary 0 1 0; exit 1; }
phase_done() {
        printf 'vm: phase %-7s %4d s\n' "$1" $((SECONDS - T_PHASE))
        T_PHASE=$SECONDS
}

# ---- can it run here?
[[ $(id -u) -eq 0 ]] || skip_all "needs root (mkosi, loop devices for the fixtures)"
missing=()
for c in qemu-system-x86_64 mkosi debootstrap busybox cpio mkfs.ext4 modprobe depmod meson ninja \
         systemd-repart mkfs.erofs mksquashfs veritysetup sfdisk openssl python3 unshare timeout; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
((${#missing[@]} == 0)) || skip_all "missing ${missing[*]} (apt-get install qemu-system-x86 mkosi debootstrap busybox-static cpio linux-image-amd64 ...)"
BUSYBOX=$(command -v busybox)
if ldd "$BUSYBOX" >/dev/null 2>&1; then
        skip_all "$BUSYBOX is not statically linked (install busybox-static)"
fi
KVER=$(vm_kernel_version) || skip_all "no /boot/vmlinuz-*-amd64 with modules in /lib/modules (install linux-image-amd64)"
[[ -r /boot/vmlinuz-$KVER ]] || skip_all "no /boot/vmlinuz-$KVER"
mkdir -p "$W"
echo "vm: kernel $KVER, work directory $W, qemu TCG with $SMP vCPUs and $MEM MiB, stopped after $STALL s without output (at most $TMO s)"

# ---- 1. kernel: the XZ payload of the bzImage, if it decompresses to an ELF
VMLINUX=$W/vmlinux-$KVER
if [[ ! -s $VMLINUX ]]; then
        python3 - "/boot/vmlinuz-$KVER" "$VMLINUX" <<'PY' || true
import lzma, sys
src, dst = sys.argv[1], sys.argv[2]
d = open(src, "rb").read()
i = d.find(b"\xfd7zXZ\x00")
while i >= 0:
    try:
        out = lzma.LZMADecompressor().decompress(d[i:])
        if out[:4] == b"\x7fELF":
            open(dst, "wb").write(out)
            sys.exit(0)
    except lzma.LZMAError:
        pass
    i = d.find(b"\xfd7zXZ\x00", i + 1)
sys.exit(1)
PY
fi
if [[ -s $VMLINUX ]]; then
        KERNEL=$VMLINUX
else
        echo "vm: note: could not decompress /boot/vmlinuz-$KVER to an ELF, booting the bzImage"
        KERNEL=/boot/vmlinuz-$KVER
fi
phase_done kernel

# ---- 2. initrd
IRD=$W/initrd
rm -rf "$IRD"
mkdir -p "$IRD"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$BUSYBOX" "$IRD/bin/busybox"
: >"$IRD/lib/modules/order"
while read -r f; do
        install -D -m 0644 "$f" "$IRD$f"
        echo "$f" >>"$IRD/lib/modules/order"
done < <(vm_module_files "$KVER")
[[ -s $IRD/lib/modules/order ]] || fail_all "modprobe -S $KVER found none of ${VM_MODULES[*]}"
cat >"$IRD/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
        insmod "$m" || echo "initrd: insmod $m failed"
done </lib/modules/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
        echo "initrd: cannot mount /dev/vda"
        poweroff -f
fi
umount /proc /sys /dev
exec switch_root /newroot /lib/systemd/systemd
EOF
chmod 0755 "$IRD/init"
(cd "$IRD" && find . | cpio -o -H newc --quiet) >"$W/initrd.cpio" || fail_all "cpio failed"
phase_done initrd

# ---- 3. guest tree
MIRROR=$(vm_host_mirror)
KEY=$( { cat "$VM_SRC/mkosi.conf"; find "$VM_SRC/mkosi.skeleton" -type f -print0 2>/dev/null | sort -z | xargs -0r cat; echo "$MIRROR"; } | sha256sum | cut -d' ' -f1)
OUT=$W/mkosi-out
TREE=
if ((REBUILD == 0)) && [[ -f $W/guest.key && $(cat "$W/guest.key") == "$KEY" ]]; then
        TREE=$(find "$OUT" -mindepth 1 -maxdepth 2 -type d -name image 2>/dev/null | head -n1)
fi
if [[ -n $TREE && -x $TREE/lib/systemd/systemd ]]; then
        echo "vm: reusing the mkosi tree $TREE (mkosi.conf unchanged; --rebuild to rebuild it)"
        if ! "$VM_DIR/stage-guest.sh" "$TREE" >"$W/stage.log" 2>&1; then
                cat "$W/stage.log"
                fail_all "stage-guest.sh failed"
        fi
        grep '^stage-guest:' "$W/stage.log"
else
        rm -f "$W/guest.key"
        echo "vm: building the guest with mkosi (mirror $MIRROR), log in $W/mkosi.log"
        # A tmpfs on /run in a private mount namespace (nspawn wants it), --nspawn-keep-unit:
        # no system bus on the machines this runs on.
        if ! (cd "$VM_SRC" && unshare -m --propagation private sh -c \
                        'mount -t tmpfs tmpfs /run && exec mkosi --nspawn-keep-unit --force \
                                --mirror="$0" --output-dir="$1" --cache="$2" build' \
                        "$MIRROR" "$OUT" "$W/mkosi-cache") >"$W/mkosi.log" 2>&1; then
                tail -n 40 "$W/mkosi.log"
                fail_all "mkosi build failed (log: $W/mkosi.log)"
        fi
        grep '^stage-guest:' "$W/mkosi.log"
        TREE=$(find "$OUT" -mindepth 1 -maxdepth 2 -type d -name image | head -n1)
        [[ -n $TREE && -x $TREE/lib/systemd/systemd ]] || fail_all "mkosi produced no tree with systemd in $OUT"
        echo "$KEY" >"$W/guest.key"
fi
phase_done guest

# ---- 4. disk
DISK=$W/root.img
rm -f "$DISK"
size=$(( $(du -sm "$TREE" | cut -f1) + 384 ))
mkfs.ext4 -q -F -L sysext-vm -d "$TREE" "$DISK" "${size}M" >"$W/mkfs.log" 2>&1 ||
        { cat "$W/mkfs.log"; fail_all "mkfs.ext4 -d failed"; }
phase_done disk

# ---- 5. boot and test
RES=$W/results.log
CON=$W/console.log
rm -f "$RES" "$CON"
echo "vm: booting (console: $CON)"
timeout -k 10 "$TMO" qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp "$SMP" -m "$MEM" \
        -nodefaults -display none -monitor none -no-reboot \
        -serial "file:$CON" -serial "file:$RES" \
        -kernel "$KERNEL" -initrd "$W/initrd.cpio" \
        -append "console=ttyS0 panic=-1 mitigations=off loglevel=4 systemd.show_status=1" \
        -drive "file=$DISK,if=virtio,format=raw,cache=unsafe" </dev/null >"$W/qemu.log" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null' EXIT
# The watchdog: progress is output on either serial port.
stalled=0 last_size=-1 last_t=$SECONDS
while kill -0 "$qpid" 2>/dev/null; do
        size=$(( $(stat -c %s "$CON" 2>/dev/null || echo 0) + $(stat -c %s "$RES" 2>/dev/null || echo 0) ))
        if ((size != last_size)); then
                last_size=$size last_t=$SECONDS
        elif ((SECONDS - last_t >= STALL)); then
                stalled=1
                kill "$qpid" 2>/dev/null
                break
        fi
        sleep 2
done
qrc=0
wait "$qpid" || qrc=$?
trap - EXIT
phase_done boot

# ---- results
n_pass=0 n_fail=0 n_skip=0
if [[ -f $RES ]]; then
        tr -d '\r' <"$RES" >"$RES.txt"
        sed 's/^/    /' "$RES.txt"
        n_skip=$(grep -c '^ok .* # SKIP ' "$RES.txt" || true)
        n_pass=$(( $(grep -c '^ok ' "$RES.txt" || true) - n_skip ))
        n_fail=$(grep -c '^not ok ' "$RES.txt" || true)
else
        : >"$RES.txt"
fi
last_check=$(grep -E '^(ok|not ok) ' "$RES.txt" | tail -n1)
if ((stalled)); then
        echo "not ok - harness: the guest wrote nothing for $STALL s, qemu stopped (last check reported: '${last_check:-none}')"
        n_fail=$((n_fail + 1))
elif ((qrc == 124 || qrc == 137)); then
        echo "not ok - harness: qemu stopped at the outer limit of $TMO s (last check reported: '${last_check:-none}')"
        n_fail=$((n_fail + 1))
elif ((qrc != 0)); then
        echo "not ok - qemu exited with status $qrc"
        sed 's/^/    qemu: /' "$W/qemu.log" | tail -n 20
        n_fail=$((n_fail + 1))
fi
for marker in guest-tests-done shutdown-check-done; do
        what="test in the guest (guest/vmtest.sh)"
        [[ $marker == shutdown-check-done ]] && what="shutdown check (guest/shutdown-check.sh)"
        if ! grep -q "^# $marker" "$RES.txt"; then
                echo "not ok - harness: the guest did not report $marker (the $what did not finish; last check reported: '${last_check:-none}')"
                n_fail=$((n_fail + 1))
        fi
done
if ((n_fail > 0)) && [[ -f $CON ]]; then
        echo "vm: last lines of the console ($CON):"
        tr -d '\r' <"$CON" | tail -n 60 | sed 's/^/    console: /'
fi
echo "vm: total $((SECONDS - T_START)) s"
summary "$n_pass" "$n_fail" "$n_skip"
((n_fail == 0))
