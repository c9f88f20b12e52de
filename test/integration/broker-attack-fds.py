#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""fds that are not what a method expects, too many fds, callers that leave early (test-broker-attacks).
broker-attack-fds.py CLIENT SOCKET IMAGE MODE [ARG]; prints one line per call: TAG reply-or-EOF."""
import json, os, select, socket, sys, importlib.util
spec = importlib.util.spec_from_file_location('vc', sys.argv[1]); vc = importlib.util.module_from_spec(spec); spec.loader.exec_module(vc)
sock, img, mode = sys.argv[2], sys.argv[3], sys.argv[4]
M = 'io.systemd.MountFileSystem.MountImage'
P = {'imageFileDescriptor': 0, 'userNamespaceFileDescriptor': 1}

def kinds():
    a, b = socket.socketpair()
    yield 'mount-ns', os.open('/proc/self/ns/mnt', os.O_RDONLY)
    yield 'pid-ns', os.open('/proc/self/ns/pid', os.O_RDONLY)
    yield 'pidfd', os.pidfd_open(os.getpid())
    yield 'eventfd', os.eventfd(0)
    yield 'dev-null', os.open('/dev/null', os.O_RDONLY)
    yield 'directory', os.open('/', os.O_RDONLY | os.O_DIRECTORY)
    yield 'socket', os.dup(a.fileno())
    yield 'pipe', os.pipe()[0]
    yield 'user-ns', os.open('/proc/self/ns/user', os.O_RDONLY)

def short(reply):
    if reply is None:
        return 'EOF'
    if 'error' in reply:
        return 'ERROR ' + reply['error'] + ': ' + reply.get('parameters', {}).get('message', '')
    return 'SERVED ' + json.dumps(reply)[:80]

if mode == 'wrong-userns':
    for k, fd in kinds():
        if k == 'user-ns':
            continue
        s, (reply, _) = vc.call(sock, M, P, [os.open(img, os.O_RDONLY), fd])
        print('userns=' + k, short(reply), flush=True)
elif mode == 'wrong-image':
    for k, fd in kinds():
        s, (reply, _) = vc.call(sock, M, P, [fd, os.open('/proc/self/ns/user', os.O_RDONLY)])
        print('image=' + k, short(reply), flush=True)
elif mode == 'many-fds':
    n = int(sys.argv[5])
    fds = [os.open(img, os.O_RDONLY)] + [os.open('/proc/self/ns/user', os.O_RDONLY) for _ in range(n - 1)]
    try:
        s, (reply, _) = vc.call(sock, M, P, fds)
        print('fds=%d' % n, short(reply), flush=True)
    except OSError as e:
        print('fds=%d' % n, 'EOF (%s)' % e.strerror, flush=True)
elif mode == 'early-close':
    # the call sent whole, the connection closed before the reply
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    msg = json.dumps({'method': M, 'parameters': P}).encode() + b'\0'
    socket.send_fds(s, [msg], [os.open(img, os.O_RDONLY), os.open('/proc/self/ns/user', os.O_RDONLY)])
    s.close()
    print('early-close sent', flush=True)
elif mode == 'one':
    s, (reply, _) = vc.call(sock, M, P, [os.open(img, os.O_RDONLY), os.open('/proc/self/ns/user', os.O_RDONLY)])
    print('one', short(reply), flush=True)
