#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for sysext-idmapd's io.sysext-idmap.Broker.MountOverlay, for testing the client side
(run as an ordinary user, merge in a container) where the daemon is not built. It does what the
daemon's contract says a layer is (no trust decisions: tests only, never installed): mounts each
erofs image (the fds sent, or the paths given on the command line for "the host's trusted
extensions"), clones each hierarchy's subtree detached, sets it read-only, nodev, nosuid and
idmapped with the caller's user namespace and sends the fds back.

Usage: fake-broker.py SOCKET [TRUSTED-IMAGE...]   (serves until killed; one connection at a time)
"""
import ctypes
import json
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_open_tree, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_mount_setattr = 428, 430, 431, 432, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_EMPTY_PATH, AT_RECURSIVE = 1, 0o2000000, 0x1000, 0x8000
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_IDMAP = 1, 2, 4, 0x100000


class MountAttr(ctypes.Structure):
    _fields_ = [('attr_set', ctypes.c_uint64), ('attr_clr', ctypes.c_uint64),
                ('propagation', ctypes.c_uint64), ('userns_fd', ctypes.c_uint64)]


def sc(*args):
    r = libc.syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def mount_erofs(source):
    fs = sc(SYS_fsopen, b'erofs', 1)
    try:
        sc(SYS_fsconfig, fs, FSCONFIG_SET_STRING, b'source', source.encode(), 0)
        sc(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return sc(SYS_fsmount, fs, 1, MOUNT_ATTR_RDONLY)
    finally:
        os.close(fs)


def layer(mnt, sub, userns):
    try:
        os.stat(sub, dir_fd=mnt)
    except FileNotFoundError:
        return None
    fd = sc(SYS_open_tree, mnt, sub.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID |
                     (MOUNT_ATTR_IDMAP if userns is not None else 0), 0, 0, userns or 0)
    sc(SYS_mount_setattr, fd, b'', AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
    return fd


def receive(conn):
    data, fds = b'', []
    while b'\0' not in data:
        msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
        if not msg:
            return None, []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(memoryview(payload).cast('i'))
        data += msg
    return json.loads(data.split(b'\0')[0]), fds


def mount_overlay(params, fds, trusted):
    userns = params.get('userNamespaceFileDescriptor')
    userns = fds[userns] if userns is not None else None
    idx = params.get('imageFileDescriptors')
    sources = [f'/proc/self/fd/{fds[i]}' for i in idx] if idx else trusted
    mounts = [mount_erofs(s) for s in sources]
    out, reply_fds = [], []
    for h in params.get('hierarchies') or ['/usr', '/opt']:
        layers = []
        for m in reversed(mounts):          # top first: the last image on top
            fd = layer(m, h.lstrip('/'), userns)
            if fd is not None:
                layers.append(len(reply_fds))
                reply_fds.append(fd)
        out.append({'hierarchy': h, 'layerFileDescriptors': layers})
    for m in mounts:
        os.close(m)
    names = [{'name': os.path.basename(s), 'trust': 'unprotected'} for s in sources]
    return {'hierarchies': out, 'extensions': names, 'skipped': []}, reply_fds


def serve(conn, trusted):
    while True:
        call, fds = receive(conn)
        if call is None:
            return
        reply_fds = []
        if call.get('method') == 'io.sysext-idmap.Broker.MountOverlay':
            try:
                params, reply_fds = mount_overlay(call.get('parameters') or {}, fds, trusted)
                reply = {'parameters': params}
            except OSError as e:
                reply = {'error': 'io.sysext-idmap.Broker.Failed', 'parameters': {'message': str(e)}}
        else:
            reply = {'error': 'org.varlink.service.MethodNotFound', 'parameters': {'method': call.get('method')}}
        data = json.dumps(reply).encode() + b'\0'
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(bytearray(
            b''.join(fd.to_bytes(4, sys.byteorder) for fd in reply_fds)))))] if reply_fds else []
        conn.sendmsg([data], anc)
        for fd in fds + reply_fds:
            os.close(fd)


def main():
    path, trusted = sys.argv[1], sys.argv[2:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(16)
    print('ready', flush=True)
    while True:
        conn, _ = s.accept()
        with conn:
            serve(conn, trusted)


if __name__ == '__main__':
    main()
