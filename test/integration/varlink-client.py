#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small Varlink client for the daemon tests (python3's socket module, fds with send_fds).

  varlink-client.py SOCKET METHOD [JSON-PARAMETERS] [--fd=PATH[:MODE]]... [--userns=PID|self]
                    [--raw=BYTES] [--expect-error=NAME] [--clone-mount=N:FILE]

--fd opens PATH (O_RDONLY, or MODE "path" for O_PATH, "dir" for O_DIRECTORY) and passes it; the
parameters name it by its position among the --fd/--userns options. --raw sends BYTES (Python
escapes allowed) instead of a call and prints what comes back. Prints the reply's JSON on stdout,
and with --clone-mount the reply's mount fd index N is cloned (open_tree) and FILE inside it read.
Exit status 0 for a reply, 3 for an error reply (name on stdout), 4 for EOF without reply.
"""
import json
import os
import socket
import sys

def recv_message(s, max_fds=253):
    buf = b''
    fds = []
    while b'\0' not in buf:
        data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(max_fds * 4))
        for level, typ, d in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(memoryview(d).cast('i')[:len(d) // 4])
        if not data:
            return None, fds
        buf += data
    return json.loads(buf[:buf.index(b'\0')]), fds

def main(argv):
    path, method = argv[0], argv[1]
    params = {}
    fds = []
    raw = None
    for a in argv[2:]:
        if a.startswith('--fd='):
            spec = a[5:]
            p, _, mode = spec.partition(':')
            flags = os.O_RDONLY | os.O_CLOEXEC
            if mode == 'path':
                flags |= os.O_PATH
            elif mode == 'dir':
                flags |= os.O_DIRECTORY
            fds.append(os.open(p, flags))
        elif a.startswith('--userns='):
            pid = a[9:]
            fds.append(os.open('/proc/%s/ns/user' % pid, os.O_RDONLY | os.O_CLOEXEC))
        elif a.startswith('--raw='):
            raw = a[6:].encode().decode('unicode_escape').encode('latin-1')
        else:
            params = json.loads(a)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if raw is not None:
        msg = raw
    else:
        msg = json.dumps({'method': method, 'parameters': params}).encode() + b'\0'
    if fds:
        socket.send_fds(s, [msg], fds)
    else:
        s.sendall(msg)
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
    return 0

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
