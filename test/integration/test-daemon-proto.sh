#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# sysext-idmapd's protocol, attacked by ordinary users (setpriv to uids made for the test): the
# introspection (GetInfo, GetInterfaceDescription), malformed, oversized and half-sent requests, a
# path where an fd index belongs, refused and unknown fields, "more", connection floods beyond the
# per-uid and total limits, a hanging request past the runtime limit, a daemon killed mid-request
# (the client sees EOF, a restarted daemon serves). With the broker library: an ordinary user in its
# own user namespace mounts a trusted erofs image and reads root-owned files through a clone.
set -euo pipefail
source "$TEST_LIB"
enter_private_ns "$@"
require_cmd setpriv
# the system's python: the ordinary users of the test must be able to run it
PY=/usr/bin/python3
[[ -x $PY ]] || skip "missing $PY"
: "${SYSEXT_IDMAPD:=$(dirname "$SYSEXT_IDMAP")/../daemon/sysext-idmapd}"
[[ -x $SYSEXT_IDMAPD ]] || skip "missing sysext-idmapd at $SYSEXT_IDMAPD"
setup_scratch
chmod 0755 "$SCRATCH"

CLIENT=$TEST_LIB_DIR/varlink-client.py
SOCKDIR=$SCRATCH/run
mkdir -p "$SOCKDIR"
SOCK=$SOCKDIR/io.systemd.MountFileSystem
# The test's "host" for --root=: below our private /run (a root-owned 0755 tmpfs), so that the whole
# path to its extension directories is root-controlled as on a real host.
R=/run/daemon-proto-root
mkdir -p "$R/var/lib/extensions" "$R/usr/lib" "$R/etc"
printf 'ID=debian\nVERSION_ID=12\n' >"$R/usr/lib/os-release"

U1=(setpriv --reuid=4242 --regid=4242 --clear-groups)
U2=(setpriv --reuid=4243 --regid=4243 --clear-groups)
U3=(setpriv --reuid=4244 --regid=4244 --clear-groups)

DPID=
HOLDERS=()
start_daemon() {        # start_daemon OPTION...: in the background, until its socket answers
        "$SYSEXT_IDMAPD" --listen="$SOCK" --root="$R" "$@" 2>>"$SCRATCH/daemon.log" &
        DPID=$!
        local i
        for ((i = 0; i < 200; i++)); do
                "$PY" "$CLIENT" "$SOCK" org.varlink.service.GetInfo >/dev/null 2>&1 && return 0
                kill -0 "$DPID" 2>/dev/null || break
                sleep 0.05
        done
        cat "$SCRATCH/daemon.log" >&2
        echo "sysext-idmapd did not come up" >&2
        exit 1
}
stop_daemon() {         # the daemon and its workers (its children), by pid
        [[ -n $DPID ]] || return 0
        local w
        w=$(ps -o pid= --ppid "$DPID" 2>/dev/null || true)
        kill -9 "$DPID" $w 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
        DPID=
}
trap '_rc=$?; release; stop_daemon; set +e; (exit $_rc); _cleanup' EXIT

vcall() {               # vcall USER-PREFIX... @@ ARGS: output in $out, exit status in $rc
        local -a who=()
        while [[ $1 != @@ ]]; do who+=("$1"); shift; done
        shift
        rc=0
        out=$("${who[@]}" "$PY" "$CLIENT" "$SOCK" "$@" 2>&1) || rc=$?
}
expect() {              # expect WHAT RC SUBSTRING
        if [[ $rc == "$2" && $out == *"$3"* ]]; then
                pass "$1"
        else
                fail "$1: exit $rc, got: $out"
        fi
}
alive() {
        vcall "${U1[@]}" @@ org.varlink.service.GetInfo
        expect "daemon still serves after: $1" 0 '"product": "sysext-idmapd"'
}

start_daemon --idle-exit=0 --max-connections=8 --max-connections-per-uid=4

# ---- introspection ----
vcall "${U1[@]}" @@ org.varlink.service.GetInfo
expect "GetInfo lists the interfaces" 0 '"interfaces": ["org.varlink.service", "io.systemd.MountFileSystem", "io.sysext-idmap.Broker"]'
vcall "${U1[@]}" @@ org.varlink.service.GetInterfaceDescription '{"interface":"io.systemd.MountFileSystem"}'
expect "IDL of io.systemd.MountFileSystem" 0 'method MountImage(\n  imageFileDescriptor: int,'
vcall "${U1[@]}" @@ org.varlink.service.GetInterfaceDescription '{"interface":"io.sysext-idmap.Broker"}'
expect "IDL of io.sysext-idmap.Broker" 0 'method MountOverlay('
# docs/sysext-idmapd.md shows the IDL: it must be what the daemon says
for iface in io.systemd.MountFileSystem io.sysext-idmap.Broker; do
        vcall @@ org.varlink.service.GetInterfaceDescription "{\"interface\":\"$iface\"}"
        if "$PY" - "$SOURCE_ROOT/docs/sysext-idmapd.md" "$iface" "$out" <<'PY'
import json, re, sys
doc, iface, reply = open(sys.argv[1]).read(), sys.argv[2], json.loads(sys.argv[3])
blocks = [b for b in re.findall(r"```\n(.*?)```", doc, re.S) if re.search(r"^interface %s$" % re.escape(iface), b, re.M)]
sys.exit(0 if blocks == [reply["parameters"]["description"]] else 1)
PY
        then pass "docs/sysext-idmapd.md shows the IDL of $iface as the daemon returns it"
        else fail "docs/sysext-idmapd.md differs from the daemon's IDL of $iface"
        fi
done
vcall "${U1[@]}" @@ org.varlink.service.GetInterfaceDescription '{"interface":"org.example.nothing"}'
expect "unknown interface" 3 'org.varlink.service.InterfaceNotFound'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.Bogus
expect "unknown method" 3 '"error": "org.varlink.service.MethodNotFound"'

# ---- parameters ----
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":"/etc/passwd"}'
expect "a path instead of an fd index" 3 '"parameter": "imageFileDescriptor"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":1}' --fd=/etc/passwd
expect "an fd index beyond the fds sent" 3 '"parameter": "imageFileDescriptor"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0}'
expect "an fd index without fds" 3 '"parameter": "imageFileDescriptor"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0}' --fd=/etc/passwd:path
expect "an O_PATH image fd" 3 '"parameter": "imageFileDescriptor"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0,"readOnly":false}' --fd=/etc/passwd
expect "readOnly=false refused" 3 '"parameter": "readOnly"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0,"password":"x"}' --fd=/etc/passwd
expect "a password refused (no encrypted images)" 3 '"parameter": "password"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0,"imagePolicy":"root=bogus"}' --fd=/etc/passwd
expect "a bad image policy" 3 '"parameter": "imagePolicy"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0,"sneaky":1}' --fd=/etc/passwd
expect "an unknown field is refused, not ignored" 3 '"parameter": "sneaky"'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0}' --fd=/etc/passwd
expect "no user namespace: root only" 3 'PermissionDenied'
vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountDirectory '{"directoryFileDescriptor":0,"mode":"bogus"}' --fd=/tmp:dir
expect "MountDirectory: an unknown mode" 3 '"parameter": "mode"'
vcall "${U1[@]}" @@ io.sysext-idmap.Broker.MountOverlay '{"imageFileDescriptors":[0,"x"]}' --fd=/etc/passwd
expect "MountOverlay: a string among the fd indexes" 3 '"parameter": "imageFileDescriptors"'
vcall "${U1[@]}" @@ io.sysext-idmap.Broker.MountOverlay '{"hierarchies":["usr"]}'
expect "MountOverlay: a relative hierarchy" 3 '"parameter": "hierarchies"'
vcall "${U1[@]}" @@ io.sysext-idmap.Broker.GetStatus
expect "GetStatus: root only" 3 'io.sysext-idmap.Broker.PermissionDenied'
vcall @@ io.sysext-idmap.Broker.GetStatus
expect "GetStatus as root" 0 '"entries": ['
vcall "${U1[@]}" @@ x --raw='{"method":"org.varlink.service.GetInfo","more":true}\0'
expect '"more" for a method that does not stream' 3 '"parameter": "more"'

# ---- malformed, oversized, half-sent ----
vcall "${U1[@]}" @@ x --raw='garbage\0'
expect "not JSON: the connection is closed" 4 EOF
alive "not JSON"
vcall "${U1[@]}" @@ x --raw='["method"]\0'
expect "an array, not an object" 4 EOF
vcall "${U1[@]}" @@ x --raw='{"method":"org.varlink.service.GetInfo","parameters":{"a":"\xff"}}\0'
expect "invalid UTF-8" 4 EOF
"$PY" -c 'import sys; sys.stdout.write("{\"method\":\"" + "a" * 200000 + "\"}\0")' >"$SCRATCH/big"
vcall "${U1[@]}" @@ x --raw-file="$SCRATCH/big"
expect "a 200 KB request (limit 128 KiB)" 4 EOF
alive "oversized"
vcall "${U1[@]}" @@ x --raw='{"method":"org.varlink.service.GetI' --half-close
expect "half-sent request, then EOF" 4 EOF
alive "half-sent"
# 17 fds on one message (limit 16)
vcall "${U1[@]}" @@ org.varlink.service.GetInfo $(for i in $(seq 17); do printf -- '--fd=/etc/passwd '; done)
expect "17 fds on one message" 4 EOF
alive "too many fds"

# ---- floods ----
served() {              # served USER-PREFIX...: GetInfo answered, retried while workers are reaped
        local i
        for ((i = 0; i < 200; i++)); do
                vcall "$@" @@ org.varlink.service.GetInfo
                [[ $rc == 0 ]] && return 0
                sleep 0.05
        done
        return 1
}
hold() {                # hold N USER-PREFIX...: N served connections kept open in the background
        local n=$1 f=$SCRATCH/held.$RANDOM
        shift
        "$@" "$PY" - "$SOCK" "$n" >"$f" <<'PY' &
import signal, socket, sys
ss = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
    s.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
    if b'"product"' not in s.recv(65536):
        print('refused', flush=True); sys.exit(1)
    ss.append(s)
print('held', flush=True)
signal.pause()
PY
        HOLDERS+=($!)
        local i
        for ((i = 0; i < 400; i++)); do
                grep -E 'held|refused' "$f" >/dev/null && break
                sleep 0.05
        done
        grep held "$f" >/dev/null
}
release() {
        ((${#HOLDERS[@]} > 0)) || return 0
        kill "${HOLDERS[@]}" 2>/dev/null || true
        wait "${HOLDERS[@]}" 2>/dev/null || true
        HOLDERS=()
}
vcall "${U1[@]}" @@ org.varlink.service.GetInfo --hold=4
expect "a 5th connection of one uid (limit 4)" 3 'too many connections of this user'
if served "${U1[@]}"; then pass "the uid is served again once its connections are closed"; else fail "uid not served again: $out"; fi
if hold 4 "${U1[@]}" && hold 4 "${U2[@]}"; then
        pass "4 connections each of two uids are served"
        vcall "${U3[@]}" @@ org.varlink.service.GetInfo
        expect "a 9th connection (total limit 8)" 3 'too many connections to sysext-idmapd'
else
        fail "4 connections each of two uids were not served"
fi
release
if served "${U3[@]}"; then pass "served again after the flood"; else fail "not served after the flood: $out"; fi

# ---- a daemon killed mid-request, then restarted ----
"${U1[@]}" "$PY" "$CLIENT" "$SOCK" x --raw='{"method":"org.varlink.service.GetInfo"' >"$SCRATCH/mid.out" 2>&1 &
CL=$!
for ((i = 0; i < 200; i++)); do
        [[ -n $(ps -o pid= --ppid "$DPID" 2>/dev/null) ]] && break
        sleep 0.05
done
stop_daemon
rc=0
wait "$CL" || rc=$?
out=$(cat "$SCRATCH/mid.out")
expect "client of a killed daemon gets EOF" 4 EOF
start_daemon --idle-exit=0
alive "a restart on the same socket"
stop_daemon

# ---- runtime limit: a hanging request is cut off, others are served meanwhile ----
start_daemon --idle-exit=0 --worker-timeout=2
"${U1[@]}" "$PY" "$CLIENT" "$SOCK" x --raw='{"method":"org.varlink.service.GetInfo"' >"$SCRATCH/hang.out" 2>&1 &
CL=$!
alive "a hanging request of another connection"
rc=0
wait "$CL" || rc=$?
out=$(cat "$SCRATCH/hang.out")
expect "a request hanging past the runtime limit ends in EOF" 4 EOF
stop_daemon

# ---- idle exit ----
rc=0
timeout 60 "$SYSEXT_IDMAPD" --listen="$SOCK" --root="$R" --idle-exit=1 2>>"$SCRATCH/daemon.log" || rc=$?
out=exit-$rc
expect "--idle-exit=1 exits on its own with status 0" 0 exit-0

# ---- only root starts the daemon ----
rc=0
out=$("${U1[@]}" "$SYSEXT_IDMAPD" --listen="$SCRATCH/u.sock" 2>&1) || rc=$?
expect "an ordinary user cannot start the daemon" 1 "must be started as root"

# ---- the positive path (needs the broker library) ----
start_daemon --idle-exit=0
vcall @@ io.systemd.MountFileSystem.MountImage '{"imageFileDescriptor":0}' --fd=/etc/passwd
if [[ $out == *"built without the broker library"* ]]; then
        log "this sysext-idmapd has no broker library yet: the mount paths are not tested"
elif ! command -v mkfs.erofs >/dev/null || ! unshare --user --map-root-user true 2>/dev/null; then
        log "no mkfs.erofs or no unprivileged user namespaces: the mount path is not tested"
else
        mkdir -p "$SCRATCH/tree/usr/lib/extension-release.d" "$SCRATCH/tree/usr/share/hello"
        printf 'ID=_any\n' >"$SCRATCH/tree/usr/lib/extension-release.d/extension-release.hello"
        echo "from the image" >"$SCRATCH/tree/usr/share/hello/greeting"
        mkfs.erofs --all-root "$R/var/lib/extensions/hello.raw" "$SCRATCH/tree" >/dev/null 2>&1
        chmod 0644 "$R/var/lib/extensions/hello.raw"
        vcall "${U1[@]}" unshare --user --map-root-user --mount -- @@ io.systemd.MountFileSystem.MountImage \
                '{"imageFileDescriptor":0,"userNamespaceFileDescriptor":1}' \
                --fd="$R/var/lib/extensions/hello.raw" --userns=self --clone-read=usr/share/hello/greeting
        expect "a trusted erofs image for an ordinary user's namespace" 0 'CLONE 0 0:0:from the image'
        vcall "${U1[@]}" unshare --user --map-root-user --mount -- @@ io.systemd.MountFileSystem.MountImage \
                '{"imageFileDescriptor":0,"userNamespaceFileDescriptor":1}' --fd=/etc --userns=self
        expect "a directory as image: InvalidParameter" 3 '"parameter": "imageFileDescriptor"'
        expect "... with the broker's reason" 3 '"message": "'
        vcall "${U1[@]}" @@ io.systemd.MountFileSystem.MountImage \
                '{"imageFileDescriptor":0,"userNamespaceFileDescriptor":1}' \
                --fd="$R/var/lib/extensions/hello.raw" --userns=self
        expect "the initial user namespace (not the caller's own) is refused" 3 'NotEntitled'
        vcall "${U2[@]}" unshare --user --map-root-user --mount -- @@ io.systemd.MountFileSystem.MountImage \
                '{"imageFileDescriptor":0,"userNamespaceFileDescriptor":1}' \
                --fd="$R/var/lib/extensions/hello.raw" --userns=self --clone-read=usr/share/hello/greeting
        expect "a second user gets the same image" 0 'CLONE 0 0:0:from the image'
        vcall @@ io.sysext-idmap.Broker.GetStatus
        n=$(grep -o '"key": "file:' <<<"$out" | wc -l)
        if [[ $n == 1 && $out == *'"fileSystemType": "erofs"'* ]]; then
                pass "two users, one pinned erofs superblock in the store"
        else
                fail "store after two users: $out"
        fi
        vcall "${U1[@]}" unshare --user --map-root-user --mount -- @@ io.sysext-idmap.Broker.MountOverlay \
                '{"userNamespaceFileDescriptor":0,"hierarchies":["/usr"]}' --userns=self
        expect "MountOverlay: the host's trusted extensions as layers" 0 '"extensions": [{"name": "hello", "trust": '
        [[ $out == *'"layerFileDescriptors": [0]'* ]] && pass "MountOverlay: one layer fd for /usr" ||
                fail "MountOverlay layers: $out"
fi
stop_daemon
finish
