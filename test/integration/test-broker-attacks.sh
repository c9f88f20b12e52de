#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# sysext-idmapd attacked by ordinary users made for the test (red-team regression tests, issue 14):
# each section is an attack that once worked or that a rule must stop; the daemon runs on a socket
# in this test's private mount namespace, the users and their /etc/subuid exist only there.
set -euo pipefail
source "$TEST_LIB"
enter_private_ns "$@"
require_cmd setpriv unshare python3 newuidmap newgidmap
PY=/usr/bin/python3
[[ -x ${SYSEXT_IDMAPD:-} ]] || skip "no sysext-idmapd binary (SYSEXT_IDMAPD unset or not executable)"
unshare --user --map-root-user true 2>/dev/null || skip "no unprivileged user namespaces"
setup_scratch
chmod 0755 "$SCRATCH"
CLIENT=$TEST_LIB_DIR/varlink-client.py
SIGATK=$TEST_LIB_DIR/broker-attack-image.py

# Two users: A attacks, B is the victim. A has subordinate ids, B too.
A=sxatk-a A_UID=4271 A_SUB=500000
B=sxatk-b B_UID=4272 B_SUB=600000
add_test_user "$A" "$A_UID" "$A_UID" /nonexistent /usr/sbin/nologin
add_test_user "$B" "$B_UID" "$B_UID" /nonexistent /usr/sbin/nologin
for f in subuid subgid; do
        printf '%s:%s:65536\n%s:%s:65536\n' "$A" "$A_SUB" "$B" "$B_SUB" >"$SCRATCH/$f"
        touch "/etc/$f"
        mount --bind "$SCRATCH/$f" "/etc/$f"
done
as_a() { setpriv --reuid="$A_UID" --regid="$A_UID" --init-groups -- "$@"; }
as_b() { setpriv --reuid="$B_UID" --regid="$B_UID" --init-groups -- "$@"; }
# A's subuid-mapped namespace (through the setuid newuidmap), with its own mount namespace.
A_SUBNS=(unshare --user --mount --propagation private --map-users="$A_SUB,0,65536" --map-groups="$A_SUB,0,65536" --setuid=0 --setgid=0 --)

ROOT=/run/broker-attacks-root
make_root "$ROOT"
SOCK_DIR=/run/sysext-idmapd
SOCK=$SOCK_DIR/io.systemd.MountFileSystem
mkdir -p "$SOCK_DIR"
DPID=
start_daemon() {
        "$SYSEXT_IDMAPD" --listen="$SOCK" --root="$ROOT" --idle-exit=0 "$@" >>"$SCRATCH/daemon.log" 2>&1 &
        DPID=$!
        while ! "$PY" "$CLIENT" "$SOCK" org.varlink.service.GetInfo >/dev/null 2>&1; do
                kill -0 "$DPID" 2>/dev/null || { cat "$SCRATCH/daemon.log"; echo "daemon died" >&2; exit 1; }
                sleep 0.05
        done
}
stop_daemon() {
        [[ -n $DPID ]] || return 0
        kill "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
        DPID=
}
trap '_rc=$?; stop_daemon; set +e; (exit $_rc); _cleanup' EXIT
start_daemon

# vcall CMD-PREFIX... @@ CLIENT-ARGS: output in $out, status in $rc
vcall() {
        local -a who=()
        while [[ $1 != @@ ]]; do who+=("$1"); shift; done
        shift
        rc=0
        out=$("${who[@]}" "$PY" "$CLIENT" "$SOCK" "$@" 2>&1) || rc=$?
}
refused() {     # refused WHAT SUBSTRING-THAT-MUST-NOT-APPEAR
        if [[ $rc != 0 && $out != *"$2"* ]]; then
                pass "$1: refused"
        else
                fail "$1: exit $rc: $out"
        fi
}

# ---------------------------------------------------------------------------------------------
# MountDirectory, foreign mode: B's container tree (owned by the foreign range, below B's own
# directory), bind-mounted by A, in A's own mount namespace, below a directory A owns. The ".."
# of a bind mount's root is the mount point: A's directory.
BD=$SCRATCH/b
mkdir -p "$BD/ctr/etc"
echo "B's secret" >"$BD/ctr/etc/shadow"
chmod 0600 "$BD/ctr/etc/shadow"
chmod 0755 "$BD" "$BD/ctr" "$BD/ctr/etc"
chown "$B_UID:$B_UID" "$BD"
chown_tree_foreign "$BD/ctr"
AD=$SCRATCH/a
mkdir -p "$AD/mnt/x" "$AD/own"
chown -R "$A_UID:$A_UID" "$AD"
chown "$A_SUB:$A_SUB" "$AD/mnt"         # the caller below is the root of A's subuid namespace
for mode in foreign auto; do
        vcall as_a "${A_SUBNS[@]}" bash -c 'mount --bind "$1" "$2" && exec "${@:3}"' _ "$BD/ctr" "$AD/mnt/x" \
                @@ io.systemd.MountFileSystem.MountDirectory \
                "{\"directoryFileDescriptor\":0,\"userNamespaceFileDescriptor\":1,\"mode\":\"$mode\"}" \
                --fd="$AD/mnt/x:dir" --userns=self --clone-read=etc/shadow
        refused "MountDirectory mode=$mode of another user's foreign tree bind-mounted below A's directory" "B's secret"
        log "  ($out)"
done
# (The kernel refuses to clone a mount of another mount namespace: the daemon only ever sees A's
# fds of its own namespace's mounts, which A cannot change.) In the daemon's namespace root may have
# mounted something below A's foreign tree (a container manager's mounts): B's tree there must not
# travel with the clone of A's directory.
# keep_fd SUBSTART DIR: a command prefix (in $KEEP): a subuid namespace, DIR opened as fd 3 in our
# mount namespace, then the command in a mount namespace of its own (where the clone is made).
keep_fd() {
        KEEP=(unshare --user --map-users="$1,0,65536" --map-groups="$1,0,65536" --setuid=0 --setgid=0 --
              bash -c 'exec 3<"$1" && exec unshare --mount -- "${@:2}"' _ "$2")
}
# (The root of A's subuid namespace connects: to the daemon, the caller is uid $A_SUB, so its
# foreign tree lies below a directory of that uid.)
mkdir -p "$AD/own/ctr/sub"
chown "$A_SUB:$A_SUB" "$AD/own"
echo mine >"$AD/own/ctr/mine"
chown_tree_foreign "$AD/own/ctr"
mount --bind "$BD/ctr" "$AD/own/ctr/sub"
keep_fd "$A_SUB" "$AD/own/ctr"
vcall as_a "${KEEP[@]}" @@ io.systemd.MountFileSystem.MountDirectory \
        '{"directoryFileDescriptor":0,"userNamespaceFileDescriptor":1,"mode":"foreign"}' \
        --fd=/proc/self/fd/3:dir --userns=self --attach-read=sub/etc/shadow
if [[ $rc == 0 && $out == *"ATTACH 0 read failed"* && $out != *"secret"* ]]; then
        pass "MountDirectory of A's foreign tree: a submount (B's tree) is not part of the clone"
else
        fail "MountDirectory of A's foreign tree with B's tree mounted below: exit $rc: $out"
fi
umount "$AD/own/ctr/sub"
# B's tree bind-mounted (by root, in the daemon's namespace) onto a directory of A's: the walk up
# from the bind mount's root must not cross into A's directory.
mkdir -p "$AD/own/bmnt"
chown "$A_SUB:$A_SUB" "$AD/own/bmnt"
mount --bind "$BD/ctr" "$AD/own/bmnt"
keep_fd "$A_SUB" "$AD/own/bmnt"
vcall as_a "${KEEP[@]}" @@ io.systemd.MountFileSystem.MountDirectory \
        '{"directoryFileDescriptor":0,"userNamespaceFileDescriptor":1,"mode":"foreign"}' \
        --fd=/proc/self/fd/3:dir --userns=self --attach-read=etc/shadow
refused "MountDirectory foreign: B's tree bind-mounted by root onto A's directory" "B's secret"
umount "$AD/own/bmnt"
keep_fd "$A_SUB" "$AD/own/ctr"
vcall as_a "${KEEP[@]}" @@ io.systemd.MountFileSystem.MountDirectory \
        '{"directoryFileDescriptor":0,"userNamespaceFileDescriptor":1,"mode":"foreign"}' \
        --fd=/proc/self/fd/3:dir --userns=self --attach-read=mine
assert_contains "$out" "ATTACH 0 0:0:mine" "MountDirectory foreign: A's own foreign tree below A's directory"
keep_fd "$B_SUB" "$AD/own/ctr"
vcall as_b "${KEEP[@]}" @@ io.systemd.MountFileSystem.MountDirectory \
        '{"directoryFileDescriptor":0,"userNamespaceFileDescriptor":1,"mode":"foreign"}' \
        --fd=/proc/self/fd/3:dir --userns=self --attach-read=mine
refused "MountDirectory foreign: B asks for A's foreign tree" "ATTACH"

# ---------------------------------------------------------------------------------------------
# The user namespace: maps not written, nested, a subuid range that is B's.
make_ext_erofs "$ROOT/var/lib/extensions/hello.raw" hello
chmod 0644 "$ROOT/var/lib/extensions/hello.raw"
IMG='{"imageFileDescriptor":0,"userNamespaceFileDescriptor":1}'
vcall as_a unshare --user -- @@ io.systemd.MountFileSystem.MountImage "$IMG" \
        --fd="$ROOT/var/lib/extensions/hello.raw" --userns=self
refused "a namespace whose maps are not written" '"partitions"'
vcall as_a unshare --user --map-root-user -- unshare --user --map-root-user -- @@ \
        io.systemd.MountFileSystem.MountImage "$IMG" --fd="$ROOT/var/lib/extensions/hello.raw" --userns=self
refused "a nested user namespace" '"partitions"'
vcall as_a unshare --user --map-users="$B_SUB,0,65536" --map-groups="$B_SUB,0,65536" --setuid=0 --setgid=0 -- @@ \
        io.systemd.MountFileSystem.MountImage "$IMG" --fd="$ROOT/var/lib/extensions/hello.raw" --userns=self
refused "A maps B's subordinate ids (newuidmap must refuse, else the daemon)" '"partitions"'
vcall as_a unshare --user --map-root-user -- @@ io.systemd.MountFileSystem.MountImage "$IMG" \
        --fd="$ROOT/var/lib/extensions/hello.raw" --userns=1
refused "the initial user namespace, through pid 1" '"partitions"'
vcall as_a "${A_SUBNS[@]}" @@ io.systemd.MountFileSystem.MountImage "$IMG" \
        --fd="$ROOT/var/lib/extensions/hello.raw" --userns=self --clone-read=usr/bin/hello-hello
assert_contains "$out" 'CLONE 0 0:0:#!/bin/sh' "A's own subuid namespace gets the trusted image"

# ---------------------------------------------------------------------------------------------
# The flags of a mount handed out are not locked: the caller clones its mount (as it must) and
# mount_setattr() clears nosuid and nodev on the clone (the kernel locks mount flags only when it
# copies a mount namespace into a less privileged user namespace, never on open_tree()). So the
# broker serves no image with a device node at all (whiteouts aside): here, with
# AllowUnsignedUntrusted=yes, a user's own image carrying a block device whose backing file only root
# may read. (suid files stay harmless: the mount is idmapped into the caller's own ids.)
if command -v mkfs.erofs >/dev/null; then
        cat >"$SCRATCH/devread.py" <<'PY'
import ctypes, os, sys, json, importlib.util
libc = ctypes.CDLL(None, use_errno=True)
class MA(ctypes.Structure):
    _fields_ = [('attr_set', ctypes.c_uint64), ('attr_clr', ctypes.c_uint64), ('propagation', ctypes.c_uint64), ('userns_fd', ctypes.c_uint64)]
spec = importlib.util.spec_from_file_location('vc', sys.argv[1]); vc = importlib.util.module_from_spec(spec); spec.loader.exec_module(vc)
img, ns = os.open(sys.argv[3], os.O_RDONLY), os.open('/proc/self/ns/user', os.O_RDONLY)
s, (reply, fds) = vc.call(sys.argv[2], 'io.systemd.MountFileSystem.MountImage', {'imageFileDescriptor': 0, 'userNamespaceFileDescriptor': 1}, [img, ns])
if 'error' in reply:
    print('REFUSED', json.dumps(reply)); sys.exit(0)
t = libc.syscall(428, fds[reply['parameters']['partitions'][0]['mountFileDescriptor']], b'', 1 | 0x1000 | 0x8000 | os.O_CLOEXEC)
a = MA(0, 0x2 | 0x4, 0, 0)     # clear MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV
print('CLEAR', libc.syscall(442, t, b'', 0x1000, ctypes.byref(a), ctypes.sizeof(a)))
try:
    f = os.open(sys.argv[4], os.O_RDONLY, dir_fd=t)
    print('DEVICE', os.read(f, 64).split(b'\0')[0].decode(errors='replace'))
except OSError as e:
    print('DEVICE-REFUSED', e.strerror)
PY
        echo "root's secret" >"$SCRATCH/rootonly"
        truncate -s 4096 "$SCRATCH/rootonly"
        chmod 0600 "$SCRATCH/rootonly"
        LOOP=$(losetup --find --show --read-only "$SCRATCH/rootonly")
        src=$(_ext_src devimg)
        mknod -m 0666 "$src/usr/lib/blk" b "$((16#$(stat -c '%t' "$LOOP")))" "$((16#$(stat -c '%T' "$LOOP")))"
        mkfs.erofs --quiet "$AD/devimg.raw" "$src" >/dev/null
        chown "$A_UID:$A_UID" "$AD/devimg.raw"
        mkdir -p "$ROOT/etc/sysext-idmap"
        printf '[Broker]\nAllowUnsignedUntrusted=yes\n' >"$ROOT/etc/sysext-idmap/sysext-idmapd.conf"
        stop_daemon
        start_daemon
        rc=0
        out=$(as_a unshare --user --map-root-user --mount -- "$PY" "$SCRATCH/devread.py" "$CLIENT" "$SOCK" \
                "$AD/devimg.raw" usr/lib/blk 2>&1) || rc=$?
        if [[ $out == *"DEVICE root's secret"* ]]; then
                fail "A cleared nodev on its clone and read a root-only file through a device node of its own image: $out"
        else
                pass "a device node in a user's image cannot be opened through a handed-out mount: $out"
        fi
        assert_contains "$out" "REFUSED" "an image with a device node is refused"
        assert_contains "$out" "device nodes" "the refusal says why"
        losetup -d "$LOOP"
        rm -f "$ROOT/etc/sysext-idmap/sysext-idmapd.conf"
        stop_daemon
        start_daemon
fi

# ---------------------------------------------------------------------------------------------
# Trust "by inode after open": the trusted image's path names another inode, or the trusted inode
# is reached by another path. (Served = judged trusted: these images are unsigned, and unsigned
# untrusted ones are refused.)
TRUSTED=$ROOT/var/lib/extensions/hello.raw
make_ext_erofs "$AD/own.raw" hello
chown "$A_UID:$A_UID" "$AD/own.raw"
OVER=(as_a unshare --user --map-root-user --mount -- bash -c 'mount --bind "$1" "$2" && exec "${@:3}"' _)
vcall "${OVER[@]}" "$AD/own.raw" "$TRUSTED" @@ io.systemd.MountFileSystem.MountImage "$IMG" --fd="$TRUSTED" --userns=self
refused "A's own image bind-mounted over the trusted one's path in A's mount namespace" '"partitions"'
log "  ($out)"
vcall "${OVER[@]}" "$AD/own.raw" "$TRUSTED" @@ io.sysext-idmap.Broker.MountOverlay \
        '{"imageFileDescriptors":[0],"userNamespaceFileDescriptor":1}' --fd="$TRUSTED" --userns=self
refused "the same through MountOverlay" '"hierarchies"'
mkdir -p "$AD/extdir" && cp "$AD/own.raw" "$AD/extdir/hello.raw" && chown -R "$A_UID:$A_UID" "$AD/extdir"
vcall "${OVER[@]}" "$AD/extdir" "$ROOT/var/lib/extensions" @@ io.systemd.MountFileSystem.MountImage "$IMG" \
        --fd="$TRUSTED" --userns=self
refused "A's directory bind-mounted over the system extension directory" '"partitions"'
log "  ($out)"
# A hard link of the trusted image in a directory of A's on the same file system: protected_hardlinks
# stops A (A neither owns nor may write it); made by root (as where it is off), the path is A's: not
# trusted.
AH=$ROOT/home/a
mkdir -p "$AH" && chown "$A_UID:$A_UID" "$AH"
if as_a ln "$TRUSTED" "$AH/link.raw" 2>"$SCRATCH/ln.err"; then
        log "  (protected_hardlinks is off: A linked the trusted image)"
else
        assert_contains "$(cat "$SCRATCH/ln.err")" "Operation not permitted" \
                "A cannot hard-link the trusted image (protected_hardlinks=$(cat /proc/sys/fs/protected_hardlinks))"
        ln "$TRUSTED" "$AH/link.raw"
fi
vcall as_a unshare --user --map-root-user -- @@ io.systemd.MountFileSystem.MountImage "$IMG" --fd="$AH/link.raw" --userns=self
refused "the trusted inode through a hard link in A's directory is not trusted" '"partitions"'
log "  ($out)"
rm -f "$AH/link.raw"
ln -s "$TRUSTED" "$AD/sym.raw"
vcall as_a unshare --user --map-root-user -- @@ io.systemd.MountFileSystem.MountImage "$IMG" --fd="$AD/sym.raw" --userns=self
assert_contains "$out" '"partitions"' "a symlink of A's to the trusted image opens the trusted inode (what A may open anyway)"
rm -f "$AD/sym.raw"
# A holds an fd of the trusted image; the administrator replaces it (a new inode), or moves it out.
held() {        # held ADMIN-COMMAND...: A opens the trusted image, root runs the command, A passes the fd
        rm -f "$SCRATCH/held.go"
        as_a unshare --user --map-root-user -- bash -c 'exec 3<"$1"; until [[ -e $2 ]]; do sleep 0.05; done
                exec "${@:3}"' _ "$TRUSTED" "$SCRATCH/held.go" "$PY" "$CLIENT" "$SOCK" \
                io.systemd.MountFileSystem.MountImage "$IMG" --fd=/proc/self/fd/3 --userns=self >"$SCRATCH/held.out" 2>&1 &
        local p=$!
        sleep 0.3
        "$@"
        touch "$SCRATCH/held.go"
        rc=0
        wait "$p" || rc=$?
        out=$(cat "$SCRATCH/held.out")
}
cp "$TRUSTED" "$SCRATCH/hello.orig"
make_ext_erofs "$ROOT/var/lib/extensions/.new.raw" hello
held mv "$ROOT/var/lib/extensions/.new.raw" "$TRUSTED"
refused "an fd of the trusted image after the administrator replaced it (the old inode)" '"partitions"'
log "  ($out)"
mkdir -p "$ROOT/var/old"
held mv "$TRUSTED" "$ROOT/var/old/hello.raw"
refused "an fd of the trusted image after the administrator moved it out of the extension directory" '"partitions"'
log "  ($out)"
cp "$SCRATCH/hello.orig" "$TRUSTED"
chmod 0644 "$TRUSTED"
# ---------------------------------------------------------------------------------------------
# The request surface: fds of the wrong kind, too many fds, callers that leave early, workers
# killed mid-request. The daemon serves on, holds no more fds than before, and leaves no mount and
# no loop device behind once it stops.
FDS=$TEST_LIB_DIR/broker-attack-fds.py
as_fds() { as_a unshare --user --map-root-user --mount -- "$PY" "$FDS" "$CLIENT" "$SOCK" "$TRUSTED" "$@" 2>&1; }
stop_daemon
start_daemon
daemon_fds() { ls "/proc/$DPID/fd" | wc -l; }
fds_before=$(daemon_fds)
mnt_before=$(wc -l <"/proc/$DPID/mountinfo")
out=$(as_fds wrong-userns)
assert_not_contains "$out" SERVED "fds that are not a user namespace as userNamespaceFileDescriptor are refused"
assert_contains "$out" 'userns=mount-ns ERROR' "… a mount namespace fd: an error reply"
assert_contains "$out" 'userns=pidfd ERROR' "… a pidfd: an error reply"
log "  ($out)"
out=$(as_fds wrong-image)
assert_not_contains "$out" SERVED "fds that are not an image file as imageFileDescriptor are refused"
# (nsfs and pidfs files are regular files: refused as parameters, never reopened and probed)
assert_contains "$out" 'image=user-ns ERROR org.varlink.service.InvalidParameter' "… a user namespace fd (an nsfs regular file): InvalidParameter"
assert_contains "$out" 'image=mount-ns ERROR org.varlink.service.InvalidParameter' "… a mount namespace fd: InvalidParameter"
assert_contains "$out" 'image=pidfd ERROR org.varlink.service.InvalidParameter' "… a pidfd: InvalidParameter"
log "  ($out)"
for n in 17 64 253; do
        out=$(as_fds many-fds "$n")
        assert_not_contains "$out" SERVED "a call with $n fds is not served"
done
log "  ($out)"
for _ in 1 2 3 4 5; do as_fds early-close >/dev/null; done
# Workers killed at random points of a first mount of the trusted image (a fresh store each time).
for delay in 0 0.01 0.02 0.04 0.08 0.15; do
        as_fds one >/dev/null &
        p=$!
        sleep "$delay"
        pkill -KILL -P "$DPID" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
done
sleep 0.3
vcall as_a unshare --user --map-root-user --mount -- @@ io.systemd.MountFileSystem.MountImage "$IMG" --fd="$TRUSTED" \
        --userns=self --clone-read=usr/bin/hello-hello
assert_contains "$out" 'CLONE 0 0:0:#!/bin/sh' "after all that the daemon serves"
# (Workers may still be finishing: their fds are theirs.)
for _ in $(seq 50); do [[ -z $(pgrep -P "$DPID") ]] && break; sleep 0.1; done
fds_after=$(daemon_fds)
# The one store entry the last call made is one more fd in the main process.
if ((fds_after <= fds_before + 1)); then
        pass "the daemon holds no leaked fds ($fds_before before, $fds_after after, one pinned layer)"
else
        fail "the daemon's fds grew from $fds_before to $fds_after: $(ls -l "/proc/$DPID/fd")"
fi
assert_eq "$(wc -l <"/proc/$DPID/mountinfo")" "$mnt_before" "no mount attached in the daemon's mount table"
trusted_loops() {
        local dev ino
        dev=$(stat -c '%d' "$TRUSTED"); ino=$(stat -c '%i' "$TRUSTED")
        losetup --list --noheadings --raw -O NAME,BACK-INO,BACK-MAJ:MIN 2>/dev/null |
                awk -v ino="$ino" -v dev="$(printf '%d:%d' $((dev >> 8)) $((dev & 255)))" '$2 == ino && $3 == dev { print $1 }'
}
loops=$(trusted_loops)
[[ -n $loops ]] && pass "the pinned layer's loop device: $loops" || log "  (no loop device seen for the pinned layer)"
stop_daemon
for _ in $(seq 30); do [[ -z $(trusted_loops) ]] && break; sleep 0.1; done
assert_eq "$(trusted_loops)" "" "no loop device of the trusted image is left once the daemon stopped"
start_daemon

# ---------------------------------------------------------------------------------------------
# The per-uid connection limit, spread over subordinate uids: every uid of A's subuid range is a
# uid of A's to hold connections with (each inside uid of A's namespace connects as another outside
# uid). Counted as separate users, A's subuids fill the total limit and lock B out.
stop_daemon
start_daemon --max-connections=8 --max-connections-per-uid=3
holders=()
for k in 1 2 3 4; do
        as_a unshare --user --map-users="$A_SUB,0,65536" --map-groups="$A_SUB,0,65536" --setuid="$k" --setgid="$k" -- \
                "$PY" -c 'import socket, sys, time
l = [socket.socket(socket.AF_UNIX) for _ in range(3)]
for s in l:
    s.connect(sys.argv[1])
print("held", flush=True)
time.sleep(60)' "$SOCK" >"$SCRATCH/hold.$k" 2>&1 &
        holders+=($!)
done
for k in 1 2 3 4; do
        for _ in $(seq 100); do grep -q held "$SCRATCH/hold.$k" && break; sleep 0.05; done
done
sleep 0.5
vcall as_b @@ org.varlink.service.GetInfo
if [[ $rc == 0 && $out != *TooManyRequests* ]]; then
        pass "A's subuids count as A: B is still served with 4 of A's subuids holding 3 connections each"
else
        fail "A's subuids filled the daemon's connection limit, B is locked out: $out"
fi
kill "${holders[@]}" 2>/dev/null || true
wait "${holders[@]}" 2>/dev/null || true
stop_daemon
start_daemon

# ---------------------------------------------------------------------------------------------
# A signed image of A's own, through the untrusted path (no kernel dm-verity here, or not used for
# untrusted images: userspace check of a sealed private copy). Served; then rewritten, truncated,
# grown after the reply, or while the daemon copies and checks it; and passed as fds of every
# other kind. Whatever A does to the file, a mount shows the signed bytes or nothing.
if command -v veritysetup >/dev/null && command -v sfdisk >/dev/null && command -v mkfs.erofs >/dev/null; then
        make_ext_ddi_unpriv --sign "$AD/sig.raw" sig
        mkdir -p "$ROOT/etc/verity.d"
        cp "$TEST_CERT" "$ROOT/etc/verity.d/test.crt"
        chown "$A_UID:$A_UID" "$AD/sig.raw"
        as_sig() { as_a unshare --user --map-root-user --mount -- "$PY" "$SIGATK" "$CLIENT" "$SOCK" "$AD/sig.raw" "$@" 2>&1; }
        # Root brings A's signed image (root may mount any image it names: root's own risk). The
        # superblock it pins is shared under the signed root hash with every later caller of that
        # hash; it must hold the checked bytes, not A's file, which A rewrites afterwards.
        stop_daemon
        start_daemon
        vcall @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0}' --fd="$AD/sig.raw"
        assert_contains "$out" '"partitions"' "root's call with A's signed image is served"
        BD2=$ROOT/home/b
        mkdir -p "$BD2" && cp "$AD/sig.raw" "$BD2/sig.raw" && chown -R "$B_UID:$B_UID" "$BD2"
        "$PY" - "$AD/sig.raw" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); i = d.find(b'hello from sig'); d[i:i + 14] = b'X' * 14
open(sys.argv[1], 'wb').write(d)
PY
        sync
        echo 1 >/proc/sys/vm/drop_caches
        out=$(as_b unshare --user --map-root-user --mount -- "$PY" "$SIGATK" "$CLIENT" "$SOCK" "$BD2/sig.raw" plain 2>&1)
        assert_contains "$out" 'echo "hello from sig"' "B, with the same signed root hash, gets the checked bytes, not what A wrote into the file root brought"
        "$PY" - "$AD/sig.raw" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); i = d.find(b'X' * 14); d[i:i + 14] = b'hello from sig'
open(sys.argv[1], 'wb').write(d)
PY
        stop_daemon
        start_daemon
        out=$(as_sig plain)
        assert_contains "$out" 'plain SERVED 0:0:#!/bin/sh' "a signed image of A's own is served"
        # after: A rewrites the file, then (as memory pressure would) the caches are dropped, then A reads.
        sig_after() {   # IMAGE
                rm -f "$SCRATCH/go"
                as_a unshare --user --map-root-user --mount -- "$PY" "$SIGATK" "$CLIENT" "$SOCK" "$1" after \
                        "$SCRATCH/go" >"$SCRATCH/after.out" 2>&1 &
                local p=$! i
                for i in $(seq 200); do
                        grep -q 'POKED\|REFUSED\|Error' "$SCRATCH/after.out" && break
                        sleep 0.05
                done
                sync
                echo 1 >/proc/sys/vm/drop_caches
                touch "$SCRATCH/go"
                wait "$p" || true
                out=$(cat "$SCRATCH/after.out")
        }
        sig_after "$AD/sig.raw"
        assert_contains "$out" 'rewritten 0:0:#!/bin/sh
echo "hello from sig"' "rewritten after the reply: the mount shows the checked bytes"
        assert_contains "$out" 'truncated 0:0:#!/bin/sh' "truncated after the reply: the mount still reads"
        assert_contains "$out" 'grown 0:0:#!/bin/sh' "grown after the reply: the mount still reads"
        # (A fresh daemon each time: a second call with the same signed root hash is served from the
        # store, without copying or checking anything.)
        for how in flip shrink; do
                all=
                for _ in 1 2 3 4 5 6; do
                        stop_daemon
                        start_daemon
                        all+=$(as_sig race "$how" 1)$'\n'
                done
                if [[ $all == *XXXX* || $all != *'"SERVED 0:0:#!/bin/sh'* && $all != *REFUSED* ]]; then
                        fail "rewritten ($how) while the daemon checks it: $all"
                else
                        pass "rewritten ($how) while the daemon checks it: checked bytes or refused: ${all//$'\n'/ }"
                fi
        done
        out=$(as_sig wronly)
        assert_contains "$out" 'wronly SERVED 0:0:#!/bin/sh' "an O_WRONLY fd of A's readable image: reopened with A's rights"
        chmod 0200 "$AD/sig.raw"
        out=$(as_sig wronly)
        assert_contains "$out" 'wronly REFUSED' "an O_WRONLY fd of an image A may not read is refused"
        chmod 0644 "$AD/sig.raw"
        out=$(as_sig opath)
        assert_contains "$out" 'opath REFUSED' "an O_PATH fd is refused"
        out=$(as_sig memfd)
        assert_contains "$out" 'memfd SERVED 0:0:#!/bin/sh' "a memfd holding the signed image is served"
        assert_not_contains "$out" 'XXXX' "the memfd rewritten after the reply: the mount shows the checked bytes"
        out=$(as_sig memfd-sealed)
        assert_contains "$out" 'memfd-sealed SERVED 0:0:#!/bin/sh' "a sealed memfd is served"
        out=$(as_sig fifo)
        assert_contains "$out" 'fifo REFUSED' "a FIFO is refused"
        out=$(as_sig socket)
        assert_contains "$out" 'socket REFUSED' "a socket is refused"
        out=$(as_sig procfd)
        assert_not_contains "$out" 'SERVED' "fds of /proc and /sys files are refused"
        # … as parameters, before anything reopens them: reopened by root, /proc/PID/mem names the
        # memory of whatever that pid runs now (a setuid program it executed since).
        for f in environ mem maps; do
                assert_contains "$out" "proc /proc/self/$f REFUSED org.varlink.service.InvalidParameter" \
                        "… /proc/self/$f is refused as a parameter, not probed"
        done
        log "  ($out)"
        # On a user-writable tmpfs (/dev/shm): the same rules.
        mkdir -p "$SCRATCH/shm" && mount -t tmpfs -o mode=1777 tmpfs "$SCRATCH/shm"
        cp "$AD/sig.raw" "$SCRATCH/shm/sig.raw" && chown "$A_UID:$A_UID" "$SCRATCH/shm/sig.raw"
        sig_after "$SCRATCH/shm/sig.raw"
        assert_contains "$out" 'rewritten 0:0:#!/bin/sh
echo "hello from sig"' "on a tmpfs A writes: rewritten after the reply, the checked bytes"
        umount "$SCRATCH/shm"
        # Larger than PrivateCopyMax: refused, not served from the file.
        mkdir -p "$ROOT/etc/sysext-idmap"
        printf '[Broker]\nPrivateCopyMax=4K\n' >"$ROOT/etc/sysext-idmap/sysext-idmapd.conf"
        stop_daemon
        start_daemon
        out=$(as_sig plain)
        assert_contains "$out" 'plain REFUSED' "a signed image larger than PrivateCopyMax= is refused"
        assert_contains "$out" 'exceed the limit' "… saying that it exceeds the private copy's limit"
        rm -f "$ROOT/etc/sysext-idmap/sysext-idmapd.conf"
        # Tampered before the call: refused (by a daemon whose store does not hold its root hash yet;
        # one that does serves the pinned, checked superblock: the same signed bytes).
        stop_daemon
        start_daemon
        "$PY" - "$AD/sig.raw" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); i = d.find(b'hello from sig'); d[i:i + 5] = b'HELLO'
open(sys.argv[1], 'wb').write(d)
PY
        out=$(as_a unshare --user --map-root-user --mount -- "$PY" "$CLIENT" "$SOCK" io.systemd.MountFileSystem.MountImage "$IMG" \
                --fd="$AD/sig.raw" --userns=self --clone-read=bin/sig-hello 2>&1) || true
        assert_not_contains "$out" 'HELLO' "a signed image tampered before the call is not served"
        assert_contains "$out" 'does not match the root hash' "… refused: the data does not match the signed root hash"
fi

# ---------------------------------------------------------------------------------------------
# pid reuse against the subuid-container rule: a process running as one of A's subordinate uids
# but outside A's container namespace (a host account whose uid falls in the range, or a process
# of another of A's containers) holds an fd of the container's namespace (container managers pin
# them in files and pass them around; the kernel lets only the namespace's owner and processes in
# it open /proc/PID/ns/user, so here root hands it over), connects, and
# lets the connecting process exit; its pid is then given to a process inside the container. A
# check by pid number judged the new process. With SO_PEERPIDFD the daemon holds the connecting
# process itself, and a dead one is in no namespace. Run in a pid namespace of its own, where
# ns_last_pid steers the reuse without racing the rest of the machine.
cat >"$SCRATCH/reuse.py" <<'PY'
import os, socket, sys, json, importlib.util
spec = importlib.util.spec_from_file_location('vc', sys.argv[1]); vc = importlib.util.module_from_spec(spec); spec.loader.exec_module(vc)
ns = 3     # the container's namespace, inherited
a, b = socket.socketpair()
p1 = os.fork()
if p1 == 0:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[2])
    socket.send_fds(a, [b'x'], [s.fileno()])
    os._exit(0)
_, fds, _, _ = socket.recv_fds(b, 1, 1)
os.waitpid(p1, 0)
conn = socket.socket(fileno=fds[0])
print('PID', p1, flush=True)
sys.stdin.readline()
msg = json.dumps({'method': 'io.systemd.MountFileSystem.MountImage',
                  'parameters': {'imageFileDescriptor': 0, 'userNamespaceFileDescriptor': 1}}).encode() + b'\0'
socket.send_fds(conn, [msg], [os.open(sys.argv[4], os.O_RDONLY), ns])
print('REPLY', json.dumps(vc.recv_message(conn)[0]), flush=True)
PY
cat >"$SCRATCH/reuse.sh" <<'SH'
set -eu
S=$SCRATCH/reuse.sock
"$SYSEXT_IDMAPD" --listen="$S" --root="$ROOT" --idle-exit=0 >>"$SCRATCH/daemon-reuse.log" 2>&1 &
until "$PY" "$CLIENT" "$S" org.varlink.service.GetInfo >/dev/null 2>&1; do sleep 0.05; done
setpriv --reuid="$A_UID" --regid="$A_UID" --init-groups -- unshare --user --map-users="$A_SUB,0,65536" \
        --map-groups="$A_SUB,0,65536" --setuid=1000 --setgid=1000 -- sleep 300 &
holder=$!
until [[ $(readlink "/proc/$holder/ns/user") != "$(readlink /proc/self/ns/user)" && $(cat /proc/$holder/uid_map 2>/dev/null) == *"$A_SUB"* ]]; do sleep 0.05; done
mkfifo "$SCRATCH/reuse.in"
setpriv --reuid="$((A_SUB + 1000))" --regid="$((A_SUB + 1000))" --clear-groups -- "$PY" "$SCRATCH/reuse.py" "$CLIENT" "$S" "$holder" \
        "$ROOT/var/lib/extensions/hello.raw" 3<"/proc/$holder/ns/user" <"$SCRATCH/reuse.in" >"$SCRATCH/reuse.out" 2>&1 &
exec 5>"$SCRATCH/reuse.in"
until grep -q "^PID" "$SCRATCH/reuse.out"; do grep -q Error "$SCRATCH/reuse.out" && { cat "$SCRATCH/reuse.out"; exit 1; }; sleep 0.05; done
p1=$(awk '/^PID/ { print $2 }' "$SCRATCH/reuse.out")
echo $((p1 - 1)) >/proc/sys/kernel/ns_last_pid
nsenter --target="$holder" --user -- sleep 300 &
reused=$!
for _ in $(seq 100); do
        [[ $(readlink "/proc/$p1/ns/user") == "$(readlink "/proc/$holder/ns/user")" ]] && break
        sleep 0.05
done
echo "REUSED $([[ $reused == "$p1" && $(readlink "/proc/$p1/ns/user") == "$(readlink "/proc/$holder/ns/user")" ]] && echo yes || echo no)"
echo >&5
until grep -q '^REPLY\|Error' "$SCRATCH/reuse.out"; do sleep 0.05; done
cat "$SCRATCH/reuse.out"
kill "$reused" "$holder" $(jobs -p) 2>/dev/null || true
SH
rc=0
out=$(SCRATCH=$SCRATCH SYSEXT_IDMAPD=$SYSEXT_IDMAPD ROOT=$ROOT PY=$PY CLIENT=$CLIENT A_UID=$A_UID A_SUB=$A_SUB \
        timeout 20 unshare --pid --fork --mount-proc -- bash "$SCRATCH/reuse.sh" 2>&1) || rc=$?
if [[ $out != *"REUSED yes"* ]]; then
        fail "pid reuse: could not arrange the reuse (exit $rc): $out"
elif [[ $out == *'"partitions"'* ]]; then
        fail "pid reuse: a process outside A's container was served through a pid reused inside it: $out"
else
        pass "pid reuse: the connecting process is judged, not its pid number: $(grep -o '"message": "[^"]*"' <<<"$out")"
fi

finish
