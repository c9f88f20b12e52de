#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small Varlink client for the daemon tests (python3's socket module; fds with send_fds).

  varlink-client.py SOCKET METHOD [PARAMETERS-JSON] [OPTIONS]

  --fd=PATH[:path|:dir]  open PATH (O_RDONLY; O_PATH or O_DIRECTORY) and pass it; parameters name
                         the fds by their order among --fd/--userns options, from 0
  --userns=PID|self      pass /proc/PID/ns/user
  --raw=BYTES            send BYTES (Python string escapes) instead of a call
  --raw-file=PATH        send the bytes of PATH instead of a call
  --half-close           after sending, shut down our write side
  --hold=N               first open N connections that each complete a GetInfo and stay open
  --clone-read=FILE      open_tree(OPEN_TREE_CLONE) each mount fd of the reply (MountImage
                         partitions, MountDirectory) and print "uid:gid:content" of FILE in it
  --attach-read=FILE     move_mount() each mount fd of the reply onto /mnt (run it in a mount
                         namespace of its own) and print "uid:gid:content" of FILE in it (for
                         mounts cloned from the daemon's namespace, which only it may clone again)
  --timeout=SEC          give up waiting for a reply (default 60)

Prints the reply as JSON (or EOF). Exit status: 0 reply, 3 error reply, 4 EOF without a reply,
5 one of the --hold connections was not served.
"""
import ctypes
import json
import os
import socket
import sys

def recv_message(s, max_fds=253):
    buf, fds = b'', []
    while b'\0' not in buf:
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(max_fds * 4))
        for level, typ, d in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(memoryview(d[:len(d) - len(d) % 4]).cast('i'))
        if not data:
            return None, fds
        buf += data
    return json.loads(buf[:buf.index(b'\0')]), fds

def call(path, method, params, fds=(), timeout=60):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    msg = json.dumps({'method': method, 'parameters': params}).encode() + b'\0'
    socket.send_fds(s, [msg], list(fds)) if fds else s.sendall(msg)
    return s, recv_message(s)

OPEN_TREE_CLONE, AT_EMPTY_PATH, AT_RECURSIVE = 1, 0x1000, 0x8000
libc = ctypes.CDLL(None, use_errno=True)

def clone_read(fd, name):
    # 428: open_tree; a detached mount from the daemon must be cloned into our own namespace
    t = libc.syscall(428, fd, b'', OPEN_TREE_CLONE | AT_EMPTY_PATH | AT_RECURSIVE | os.O_CLOEXEC)
    if t < 0:
        return 'open_tree failed: ' + os.strerror(ctypes.get_errno())
    try:
        f = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=t)
        st = os.fstat(f)
        data = os.read(f, 4096).decode(errors='replace').strip()
        os.close(f)
        return '%d:%d:%s' % (st.st_uid, st.st_gid, data)
    except OSError as e:
        return 'read failed: ' + e.strerror
    finally:
        os.close(t)

def attach_read(fd, name):
    # 429: move_mount, MOVE_MOUNT_F_EMPTY_PATH = 4
    if libc.syscall(429, fd, b'', -100, b'/mnt', 4) < 0:
        return 'move_mount failed: ' + os.strerror(ctypes.get_errno())
    try:
        f = os.open('/mnt/' + name, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(f)
        data = os.read(f, 4096).decode(errors='replace').strip()
        os.close(f)
        return '%d:%d:%s' % (st.st_uid, st.st_gid, data)
    except OSError as e:
        return 'read failed: ' + e.strerror

def mount_fd_indexes(reply):
    p = reply.get('parameters', {})
    if 'mountFileDescriptor' in p:
        return [p['mountFileDescriptor']]
    return [x['mountFileDescriptor'] for x in p.get('partitions', [])]

def main(argv):
    path, method = argv[0], argv[1]
    params, fds, raw, half_close, hold, clone, timeout = {}, [], None, False, 0, None, 60
    attach = None
    for a in argv[2:]:
        if a.startswith('--fd='):
            p, _, mode = a[5:].partition(':')
            flags = os.O_RDONLY | os.O_CLOEXEC | {'path': os.O_PATH, 'dir': os.O_DIRECTORY}.get(mode, 0)
            fds.append(os.open(p, flags))
        elif a.startswith('--userns='):
            fds.append(os.open('/proc/%s/ns/user' % a[9:], os.O_RDONLY | os.O_CLOEXEC))
        elif a.startswith('--raw='):
            raw = a[6:].encode().decode('unicode_escape').encode('latin-1')
        elif a.startswith('--raw-file='):
            raw = open(a[11:], 'rb').read()
        elif a == '--half-close':
            half_close = True
        elif a.startswith('--hold='):
            hold = int(a[7:])
        elif a.startswith('--clone-read='):
            clone = a[13:]
        elif a.startswith('--attach-read='):
            attach = a[14:]
        elif a.startswith('--timeout='):
            timeout = float(a[10:])
        else:
            params = json.loads(a)
    held = []
    for _ in range(hold):
        s, (reply, _) = call(path, 'org.varlink.service.GetInfo', {}, timeout=timeout)
        if reply is None or 'error' in reply:
            print('HOLD-REFUSED', json.dumps(reply))
            return 5
        held.append(s)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    msg = raw if raw is not None else json.dumps({'method': method, 'parameters': params}).encode() + b'\0'
    try:
        socket.send_fds(s, [msg], fds) if fds else s.sendall(msg)
        if half_close:
            s.shutdown(socket.SHUT_WR)
    except (ConnectionResetError, BrokenPipeError):
        pass    # a refused connection: the daemon may have answered and closed before we wrote
    try:
        reply, rfds = recv_message(s)
    except (ConnectionResetError, BrokenPipeError):
        reply, rfds = None, []
    if reply is None:
        print('EOF')
        return 4
    print(json.dumps(reply, sort_keys=True))
    if 'error' in reply:
        return 3
    if clone:
        for i in mount_fd_indexes(reply):
            print('CLONE', i, clone_read(rfds[i], clone))
    if attach:
        for i in mount_fd_indexes(reply):
            print('ATTACH', i, attach_read(rfds[i], attach))
    return 0

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
