#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# stage-guest.sh ROOT: put the project, the test fixtures and the test units into the guest tree
# ROOT. Called by mkosi.finalize (BUILDROOT) and by test/vm/run.sh on a cached tree; runs on the
# host as root (systemd-repart needs loop devices). Idempotent: it first removes what an earlier
# run put there.
#
#  * the project: `meson setup --prefix=/usr` + `meson install --destdir`, then copied into
#    ROOT (top-level lib/ moved below usr/, the guest has merged /usr), sysext-idmap.service
#    enabled with `systemctl --root=`;
#  * the extension images, built with the helpers of test/integration/lib.sh;
#  * the kernel modules of the host's Debian kernel that the guest needs, with depmod;
#  * the in-guest test (test/vm/guest/) and its units.
set -euo pipefail

ROOT=${1:?usage: stage-guest.sh ROOT}
ROOT=$(cd "$ROOT" && pwd)
# shellcheck source=test/vm/lib.sh
. "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || { echo "stage-guest.sh: needs root" >&2; exit 1; }
[[ -x $ROOT/lib/systemd/systemd ]] || { echo "stage-guest.sh: $ROOT has no systemd" >&2; exit 1; }
KVER=$(vm_kernel_version) || { echo "stage-guest.sh: no /boot/vmlinuz-*-amd64 with modules" >&2; exit 1; }
mkdir -p "$SYSEXT_IDMAP_VM_WORK"
T0=$SECONDS

say() { printf 'stage-guest: %s\n' "$*"; }

# ---- what an earlier run staged
rm -rf "$ROOT"/var/lib/extensions "$ROOT"/srv/vmtest "$ROOT"/etc/verity.d \
       "$ROOT"/usr/lib/sysext-idmap-vmtest "$ROOT"/usr/lib/modules/"$KVER" \
       "$ROOT"/var/lib/sysext-idmap
rm -f "$ROOT"/etc/systemd/system/sysext-idmap-vm*.service

# ---- the project, built and installed by meson
B=$SYSEXT_IDMAP_VM_WORK/build-guest
D=$SYSEXT_IDMAP_VM_WORK/destdir
if [[ -d $B/meson-private ]]; then
        meson setup --reconfigure "$B" "$VM_SRC" --prefix=/usr -Dtests=false >/dev/null
else
        rm -rf "$B"
        meson setup "$B" "$VM_SRC" --prefix=/usr -Dtests=false >/dev/null
fi
ninja -C "$B" >/dev/null
rm -rf "$D"
meson install -C "$B" --destdir "$D" --quiet >/dev/null
for d in bin sbin lib lib64; do
        if [[ -d $D/$d && ! -L $D/$d ]]; then
                mkdir -p "$D/usr/$d"
                cp -a "$D/$d/." "$D/usr/$d/"
                rm -rf "${D:?}/$d"
        fi
done
cp -a "$D/." "$ROOT/"
systemctl --root="$ROOT" enable sysext-idmap.service >/dev/null 2>&1
say "installed $(cd "$D" && find . -type f | sed 's|^\.||' | tr '\n' ' ')"

# ---- kernel modules for the guest's modprobe (the initrd loads the same set)
while read -r f; do
        rel=${f#/lib/modules/"$KVER"/}
        install -D -m 0644 "$f" "$ROOT/usr/lib/modules/$KVER/$rel"
done < <(vm_module_files "$KVER")
for f in modules.order modules.builtin modules.builtin.modinfo; do
        [[ -f /lib/modules/$KVER/$f ]] && cp "/lib/modules/$KVER/$f" "$ROOT/usr/lib/modules/$KVER/"
done
depmod -b "$ROOT" "$KVER"

# ---- fixtures, built with the integration tests' helpers
export TEST_NAME=stage-guest
# shellcheck source=test/integration/lib.sh
. "$VM_SRC/test/integration/lib.sh"
SCRATCH=$(mktemp -d /var/tmp/sysext-idmap-vm-stage.XXXXXX)
trap 'rm -rf --one-file-system "$SCRATCH"' EXIT

# make_ext_tree with extras: EXT_HOOK (a function name) is called with the tree and the name.
eval "_vm_orig_make_ext_tree() $(declare -f make_ext_tree | tail -n +2)"
make_ext_tree() {
        _vm_orig_make_ext_tree "$@"
        if [[ -n ${EXT_HOOK:-} ]]; then
                "$EXT_HOOK" "$1" "$2"
        fi
}

# A unit that runs the extension's hello binary: visible to PID 1 only after a daemon-reload.
hook_probe_unit() {
        mkdir -p "$1/usr/lib/systemd/system"
        printf '[Unit]\nDescription=Probe unit shipped by the extension %s\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/%s-hello\n' \
                "$2" "$2" >"$1/usr/lib/systemd/system/$2-probe.service"
}
# 64 KiB of random data: incompressible, so squashfs stores it as is and it can be found in the
# image and tampered with.
hook_payload() {
        mkdir -p "$1/usr/share/$2"
        [[ -f $SCRATCH/payload.$2 ]] || head -c 65536 /dev/urandom >"$SCRATCH/payload.$2"
        cp "$SCRATCH/payload.$2" "$1/usr/share/$2/payload"
        sha256sum <"$SCRATCH/payload.$2" | cut -d' ' -f1 >"$SRV/$2.payload-sha256"
}

EXT=$ROOT/var/lib/extensions
SRV=$ROOT/srv/vmtest
mkdir -p "$EXT" "$SRV" "$ROOT/etc/verity.d"
REL=(ID=debian VERSION_ID=12)
RELOAD=(ID=debian VERSION_ID=12 EXTENSION_RELOAD_MANAGER=1)

# Merged at boot by sysext-idmap.service.
make_ext_erofs "$EXT/vmhello.raw" vmhello "${REL[@]}"
make_ext_squashfs "$EXT/vmsq.raw" vmsq "${REL[@]}"
make_ext_ddi --sign "$EXT/vmsigned.raw" vmsigned "${REL[@]}"
echo "$DDI_ROOTHASH" >"$SRV/vmsigned.roothash-expected"
cp "$TEST_CERT" "$ROOT/etc/verity.d/vmtest.crt"
EXT_HOOK=hook_probe_unit make_ext_erofs "$EXT/vmreloadboot.raw" vmreloadboot "${RELOAD[@]}"

# Used by the test at run time.
EXT_HOOK=hook_probe_unit make_ext_erofs "$SRV/vmreload.raw" vmreload "${RELOAD[@]}"
make_ext_erofs "$SRV/vmrun.raw" vmrun "${REL[@]}"
make_ext_squashfs "$SRV/vmsqrun.raw" vmsqrun "${REL[@]}"
EXT_UID=1000 make_ext_erofs "$SRV/vmuid.raw" vmuid "${REL[@]}"
EXT_UID=1000 make_ext_squashfs "$SRV/vmuidsq.raw" vmuidsq "${REL[@]}"
# The broker test (guest/daemon.sh): copied into /run/extensions (trusted) at test time; erofs, as
# the 6.1 kernel cannot idmap squashfs.
make_ext_erofs "$SRV/vmd.raw" vmd "${REL[@]}"

# Signed DDIs, then tampered: one byte of a file's data, and one byte of the squashfs superblock
# (its mkfs time: the file system would still mount without verity).
EXT_HOOK=hook_payload make_ext_ddi --sign "$SRV/vmtamper.raw" vmtamper "${REL[@]}"
python3 - "$SRV/vmtamper.raw" "$SCRATCH/payload.vmtamper" <<'PY'
import sys
img, payload = sys.argv[1], sys.argv[2]
data = bytearray(open(img, "rb").read())
needle = open(payload, "rb").read()[4096:4096 + 64]
off = data.find(needle)
if off < 0 or data.find(needle, off + 1) >= 0:
    sys.exit("the payload is not in %s exactly once" % img)
data[off + 10] ^= 0xff
open(img, "wb").write(data)
print("tampered %s at byte %d (file data of /usr/share/vmtamper/payload)" % (img, off + 10))
PY
EXT_HOOK= make_ext_ddi --sign "$SRV/vmtampersb.raw" vmtampersb "${REL[@]}"
python3 - "$SRV/vmtampersb.raw" "$DDI_JSON" <<'PY'
import json, sys
img, js = sys.argv[1], sys.argv[2]
usr = [p for p in json.load(open(js)) if p["type"].startswith("usr") and "verity" not in p["type"]][0]
off = usr["offset"]
with open(img, "r+b") as f:
    f.seek(off)
    sb = f.read(4)
    if sb != b"hsqs":
        sys.exit("no squashfs superblock at %d" % off)
    f.seek(off + 8)          # mkfs_time
    b = f.read(1)
    f.seek(off + 8)
    f.write(bytes([b[0] ^ 0xff]))
print("tampered %s at byte %d (squashfs superblock mkfs_time)" % (img, off + 8))
PY

# ---- the login tests (guest/logins.sh): pam_sysext_idmap in Debian's own PAM stack
# The module as the man page installs it: in common-session, after pam_systemd (the tree is
# reused, so an earlier run's line goes first).
CS=$ROOT/etc/pam.d/common-session
sed -i '/pam_sysext_idmap\.so/d' "$CS"
sed -i '/^session[[:space:]].*pam_systemd\.so/a session optional pam_sysext_idmap.so' "$CS"
grep -q '^session optional pam_sysext_idmap\.so$' "$CS" ||
        { echo "stage-guest.sh: no pam_systemd line in $CS to put pam_sysext_idmap after" >&2; exit 1; }
[[ -f $ROOT/usr/lib/x86_64-linux-gnu/security/pam_sysext_idmap.so ]] ||
        { echo "stage-guest.sh: meson did not install pam_sysext_idmap.so into Debian's PAM module directory" >&2; exit 1; }

# Files owned by nobody (65534) on disk: the session's user owns them (user:NAME mapping).
LOGINS=$SRV/logins
mkdir -p "$LOGINS"
# The user's /usr/bin/run-parts: pam_motd runs run-parts as root in the session; if this one
# ever runs it leaves its euid where only root can write.
hook_runparts() {
        printf '#!/bin/sh\n# %s: the user shadowing /usr/bin/run-parts\nid -u >/run/sxvm-marker.%s 2>/dev/null\necho "$(id -u) $0 $*" >>/run/sxvm/ran.%s 2>/dev/null\nexit 0\n' \
                "$2" "$2" "$2" >"$1/usr/bin/run-parts"
        chmod 0755 "$1/usr/bin/run-parts"
}
# For SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: a trusted image that also ships etc/.
hook_etc() {
        mkdir -p "$1/etc"
        echo "sxvm-etc from $2" >"$1/etc/sxvm-etc"
}
# The trusted system image for every session: unsigned erofs, only root can change its path.
install -d -m 0755 "$ROOT/var/lib/sysext-idmap" "$ROOT/var/lib/sysext-idmap/user-extensions"
EXT_UID=65534 EXT_HOOK=hook_etc make_ext_erofs "$SCRATCH/sxvmsys.raw" sxvmsys "${REL[@]}"
install -o 0 -g 0 -m 0644 "$SCRATCH/sxvmsys.raw" "$ROOT/var/lib/sysext-idmap/user-extensions/sxvmsys.raw"
# Copied into home directories at test time: an unsigned erofs shadowing run-parts; a DDI signed
# with the VM test's key (its certificate is /etc/verity.d/vmtest.crt); one signed with the
# attacker's own self-signed certificate (made in a scratch dir of its own: one key per dir).
EXT_UID=65534 EXT_HOOK=hook_runparts make_ext_erofs "$LOGINS/uxrp.raw" uxrp "${REL[@]}"
EXT_UID=65534 EXT_HOOK= make_ext_ddi_unpriv --sign "$LOGINS/uxsigned.raw" uxsigned "${REL[@]}"
echo "$DDI_ROOTHASH" >"$LOGINS/uxsigned.roothash-expected"
(
        SCRATCH=$SCRATCH/attacker
        mkdir -p "$SCRATCH"
        EXT_UID=65534 EXT_HOOK= make_ext_ddi_unpriv --sign "$LOGINS/uself.raw" uself "${REL[@]}"
        cp "$TEST_CERT" "$LOGINS/attacker.crt"
)
if cmp -s "$LOGINS/attacker.crt" "$ROOT/etc/verity.d/vmtest.crt"; then
        echo "stage-guest.sh: the attacker's image was signed with the trusted key" >&2
        exit 1
fi
chmod 0644 "$LOGINS"/*

# ---- the in-guest test and its units
install -D -m 0755 "$VM_DIR/guest/vmtest.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/vmtest.sh"
install -D -m 0755 "$VM_DIR/guest/shutdown-check.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/shutdown-check.sh"
install -D -m 0755 "$VM_DIR/guest/run-probe.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/run-probe.sh"
install -D -m 0755 "$VM_DIR/guest/holders.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/holders.sh"
install -D -m 0644 "$VM_DIR/guest/logins.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/logins.sh"
install -D -m 0644 "$VM_DIR/guest/homed.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/homed.sh"
install -D -m 0755 "$VM_DIR/guest/session-probe.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/session-probe.sh"
install -D -m 0644 "$VM_DIR/guest/daemon.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/daemon.sh"
install -D -m 0755 "$VM_DIR/guest/vmd-probe.sh" "$ROOT/usr/lib/sysext-idmap-vmtest/vmd-probe.sh"
install -m 0644 "$VM_DIR"/guest/vmd-*.service.in "$ROOT/usr/lib/sysext-idmap-vmtest/"
for u in "$VM_DIR"/guest/*.service; do
        install -m 0644 "$u" "$ROOT/etc/systemd/system/"
done
systemctl --root="$ROOT" enable sysext-idmap-vmtest.service sysext-idmap-vmtest-shutdown.service >/dev/null 2>&1
# No fstab: the initrd mounts the root file system read-write.
: >"$ROOT/etc/fstab"
# An installed system, not a first boot: mkosi leaves /etc/machine-id "uninitialized", and on a
# first boot PID 1 applies the presets, whose default in Debian enables every unit, so also
# systemd-sysext.service (which sysext-idmap.service conflicts with).
systemd-machine-id-setup --root="$ROOT" >/dev/null
say "fixtures: $(cd "$ROOT" && ls var/lib/extensions srv/vmtest srv/vmtest/logins var/lib/sysext-idmap/user-extensions | tr '\n' ' ')"
say "done in $((SECONDS - T0)) s"
