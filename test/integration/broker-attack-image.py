#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Attacks on a signed image passed to sysext-idmapd (test-broker-attacks): run by the attacking user
in its own user namespace. broker-attack-image.py CLIENT SOCKET IMAGE MODE [ARGS]; prints one line
per call: TAG SERVED uid:gid:content-of-bin/sig-hello, or TAG REFUSED error: message."""
import ctypes, json, os, socket, stat, sys, threading, time, importlib.util
spec = importlib.util.spec_from_file_location('vc', sys.argv[1]); vc = importlib.util.module_from_spec(spec); spec.loader.exec_module(vc)
sock, img, mode = sys.argv[2], sys.argv[3], sys.argv[4]
NAME = 'bin/sig-hello'
MARK = b'hello from sig'
data = open(img, 'rb').read()
at = data.find(MARK)
assert at > 0, 'marker not found'

def call(fd):
    ns = os.open('/proc/self/ns/user', os.O_RDONLY)
    s, (reply, fds) = vc.call(sock, 'io.systemd.MountFileSystem.MountImage',
                              {'imageFileDescriptor': 0, 'userNamespaceFileDescriptor': 1}, [fd, ns])
    if 'error' in reply:
        return None, reply['error'] + ': ' + reply.get('parameters', {}).get('message', '')
    return fds[reply['parameters']['partitions'][0]['mountFileDescriptor']], None

def show(m):
    return vc.clone_read(m, NAME)

def poke(byte):
    with open(img, 'r+b') as f:
        f.seek(at)
        f.write(byte * len(MARK))
        f.flush()
        os.fsync(f.fileno())

def restore():
    with open(img, 'r+b') as f:
        f.write(data)

def result(tag, fd):
    m, err = call(fd)
    print(tag, 'REFUSED ' + err if m is None else 'SERVED ' + show(m), flush=True)
    return m

if mode == 'plain':
    result('plain', os.open(img, os.O_RDONLY))
elif mode == 'after':
    # served, then the file is rewritten, truncated, grown: the mount keeps the checked bytes
    m, err = call(os.open(img, os.O_RDONLY))
    if m is None:
        print('after REFUSED', err); sys.exit(0)
    poke(b'X')
    # Memory pressure would evict what the check left cached; the test (root) drops the caches.
    print('POKED', flush=True)
    while len(sys.argv) > 5 and not os.path.exists(sys.argv[5]):
        time.sleep(0.05)
    print('rewritten', show(m), flush=True)
    os.truncate(img, 0); print('truncated', show(m), flush=True)
    os.truncate(img, 64 << 20); print('grown', show(m), flush=True)
    restore(); os.truncate(img, len(data))
elif mode == 'race':
    stop = False
    def flip():
        with open(img, 'r+b') as f:
            while not stop:
                f.seek(at); f.write(b'X' * len(MARK)); f.flush()
                f.seek(at); f.write(MARK); f.flush()
    def shrink():
        while not stop:
            os.truncate(img, at); os.truncate(img, len(data))
            with open(img, 'r+b') as f:
                f.write(data)
    t = threading.Thread(target=flip if sys.argv[5] == 'flip' else shrink); t.start()
    seen = {}
    for i in range(int(sys.argv[6])):
        m, err = call(os.open(img, os.O_RDONLY))
        k = ('REFUSED ' + err.split(':')[0]) if m is None else 'SERVED ' + show(m)
        seen[k] = seen.get(k, 0) + 1
    stop = True; t.join(); restore()
    print('race', sys.argv[5], json.dumps(seen), flush=True)
elif mode == 'wronly':
    result('wronly', os.open(img, os.O_WRONLY))
elif mode == 'opath':
    result('opath', os.open(img, os.O_PATH))
elif mode in ('memfd', 'memfd-sealed'):
    fd = os.memfd_create('img', os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if mode == 'memfd-sealed':
        import fcntl
        fcntl.fcntl(fd, 1033, 0x1 | 0x2 | 0x4 | 0x8)   # F_ADD_SEALS: SEAL|SHRINK|GROW|WRITE
    m, err = call(fd)
    if m is None:
        print(mode, 'REFUSED', err); sys.exit(0)
    if mode == 'memfd':
        os.pwrite(fd, b'X' * len(MARK), at)   # before the first read of the data
    print(mode, 'SERVED', show(m), flush=True)

elif mode == 'fifo':
    p = os.path.join(os.path.dirname(img), 'fifo'); os.mkfifo(p)
    result('fifo', os.open(p, os.O_RDWR))
elif mode == 'socket':
    a, b = socket.socketpair(); result('socket', a.fileno())
elif mode == 'procfd':
    for p in ('/proc/self/environ', '/proc/self/mem', '/proc/self/maps', '/sys/kernel/notes'):
        try:
            result('proc ' + p, os.open(p, os.O_RDONLY))
        except OSError as e:
            print('proc', p, 'cannot open', e.strerror)
elif mode == 'file':
    result('file ' + sys.argv[5], os.open(sys.argv[5], os.O_RDONLY if len(sys.argv) < 7 else int(sys.argv[6])))
