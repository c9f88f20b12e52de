#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Root front ends share the broker's layer store (issue 14): with sysext-idmapd running, PAM
# sessions of different users and merge --namespace-of into different targets take a trusted
# image's partitions from the daemon's one superblock, so N of them cost one loop device (the
# daemon's), each still idmapped its own way; without the daemon everything is as before (one loop
# device each, nothing logged about a broker); an image the broker refuses is mounted locally with
# a notice; a socket served by an ordinary user is never trusted by root's clients (nothing is even
# sent to it); a stopped daemon, or one whose connections an ordinary user holds, delays a login by
# at most the client's 10 s bound (not 300 s per image), and the module mounts the image itself.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
source "$(dirname "$TEST_LIB")/lib-pam.sh"
enter_private_ns "$@"
require_binary
require_pam
require_cmd mksquashfs losetup unshare nsenter setpriv
[[ -n ${SYSEXT_IDMAPD:-} && -x ${SYSEXT_IDMAPD:-} ]] ||
        skip "no sysext-idmapd binary (SYSEXT_IDMAPD unset or not executable)"
setup_pam_scratch
cd /

# Users sxst1..sxst8, uids 4601..4608.
N_MANY=8
for i in $(seq 1 "$N_MANY"); do
        add_user "sxst$i" $((4600 + i))
done

# Trusted system images (root-owned, in the root-controlled $PRIV), squashfs so that each mount of
# its own needs a loop device. Files on disk 65534: a session of user U sees them as U's (user:U).
SYS=$PRIV/sys
mkdir -m 0755 "$SYS"
ext_lines=("ID=$HOST_ID" "VERSION_ID=$HOST_VERSION_ID")
EXT_UID=65534 make_ext_squashfs "$SCRATCH/sysq.raw" sysq "${ext_lines[@]}"
install -o 0 -g 0 -m 0644 "$SCRATCH/sysq.raw" "$SYS/sysq.raw"
# Another one for --namespace-of, so its counts are its own.
NSDIR=$PRIV/ns
mkdir -m 0755 "$NSDIR"
EXT_UID=65534 make_ext_squashfs "$SCRATCH/sysn.raw" sysn "${ext_lines[@]}"
install -o 0 -g 0 -m 0644 "$SCRATCH/sysn.raw" "$NSDIR/sysn.raw"
# One the broker refuses (it serves no device nodes) but the local engine merges (nodev).
DEVDIR=$PRIV/dev
mkdir -m 0755 "$DEVDIR"
src=$(ext_src sysd)
mknod "$src/usr/lib/sysd-null" c 1 3
mksquashfs "$src" "$SCRATCH/sysd.raw" -noappend -quiet -no-progress -force-uid 65534 -force-gid 65534 >/dev/null
install -o 0 -g 0 -m 0644 "$SCRATCH/sysd.raw" "$DEVDIR/sysd.raw"

# The daemon's socket at the default path (our private /run): the PAM module's and --namespace-of's
# default, so their defaults are what is tested.
SOCK_DIR=/run/sysext-idmapd
SOCK=$SOCK_DIR/io.systemd.MountFileSystem
ROOT=/run/broker-store-root
make_root "$ROOT"
DAEMON_PID=
start_daemon() {
        mkdir -p "$SOCK_DIR"
        "$SYSEXT_IDMAPD" --listen="$SOCK" --root="$ROOT" --idle-exit=0 ${DAEMON_ARGS:-} >>"$SCRATCH/daemon.log" 2>&1 &
        DAEMON_PID=$!
        while [[ ! -S $SOCK ]]; do
                kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$SCRATCH/daemon.log"; fail "the daemon died at start"; finish; }
                sleep 0.05
        done
}
stop_daemon() {
        [[ -n $DAEMON_PID ]] || return 0
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        rm -f "$SOCK"
}
FAKE_PID=
_store_exit() { local rc=$?; stop_daemon; [[ -z $FAKE_PID ]] || kill "$FAKE_PID" 2>/dev/null; (exit "$rc"); _pam_cleanup; }
trap _store_exit EXIT

# loops_on FILE: how many loop devices are backed by FILE now.

# sessions N SERVICE WHAT: N concurrent sessions of sxst1..sxstN, each recording the owner of
# sysq's file as it sees it; while all are open, the loop devices on sysq.raw are counted
# (SESSIONS_LOOPS); then all close. Checks every session saw its own uid.
SESSIONS_LOOPS=
sessions() {
        local n=$1 svc=$2 what=$3 sync i j pids=()
        sync=$(mktemp -d "$SCRATCH/sessions.XXXXXX")
        chmod 0777 "$sync"
        log_start
        for i in $(seq 1 "$n"); do
                timeout 300 "$PAM_SESSION" "$svc" "sxst$i" sh -c \
                        "stat -c %u /usr/bin/sysq-hello >$sync/owner.$i 2>&1; touch $sync/ready.$i; while [ ! -e $sync/go ]; do sleep 0.1; done" \
                        >"$sync/out.$i" 2>&1 &
                pids+=($!)
                BG_PIDS="$BG_PIDS $!"
                # one after the other: each session's merge is done before the next one starts
                for j in $(seq 1 600); do
                        [[ -e $sync/ready.$i ]] && break
                        kill -0 "${pids[-1]}" 2>/dev/null || break
                        sleep 0.1
                done
        done
        SESSIONS_LOOPS=$(loops_on "$SYS/sysq.raw")
        touch "$sync/go"
        for i in $(seq 1 "$n"); do
                wait "${pids[$((i - 1))]}" || fail "$what: session of sxst$i exited $?: $(cat "$sync/out.$i")"
                bg_pids_remove "${pids[$((i - 1))]}"
                assert_eq "$(cat "$sync/owner.$i" 2>/dev/null)" $((4600 + i)) "$what: sxst$i sees sysq's files as its own"
        done
        SESSION_LOG=$(log_since)
}

service sxstore "system_dir=$SYS" user_dir= debug
service sxstore-no "system_dir=$SYS" user_dir= broker=no debug
service sxstore-dev "system_dir=$DEVDIR" user_dir= debug

# ---------------------------------------------------------------------------------------------
log "without a daemon: as before"
[[ ! -e $SOCK ]] || fail "a socket exists at $SOCK before the daemon starts"
sessions 2 sxstore "no daemon, 2 sessions"
assert_eq "$SESSIONS_LOOPS" 2 "no daemon: 2 sessions, a loop device each (as before)"
assert_not_contains "$SESSION_LOG" "broker" "no daemon: nothing logged about a broker"
wait_no_loops_on "$SYS/sysq.raw" "no daemon, sessions closed"
sessions "$N_MANY" sxstore "no daemon, $N_MANY sessions"
LOOPS_BEFORE=$SESSIONS_LOOPS
assert_eq "$LOOPS_BEFORE" "$N_MANY" "no daemon: $N_MANY sessions, $N_MANY loop devices"
wait_no_loops_on "$SYS/sysq.raw" "no daemon, $N_MANY sessions closed"

# ---------------------------------------------------------------------------------------------
log "with the daemon: one loop device for every session"
start_daemon
pass "the daemon listens at $SOCK"
sessions 2 sxstore "daemon, 2 sessions"
assert_eq "$SESSIONS_LOOPS" 1 "daemon: 2 sessions of 2 users share one loop device"
assert_not_contains "$SESSION_LOG" "not from the broker" "daemon: no fallback notice"
sessions "$N_MANY" sxstore "daemon, $N_MANY sessions"
LOOPS_AFTER=$SESSIONS_LOOPS
assert_eq "$LOOPS_AFTER" 1 "daemon: $N_MANY sessions share one loop device"
log "loop devices on the image with $N_MANY sessions: $LOOPS_BEFORE without the daemon, $LOOPS_AFTER with it"

log "broker=no: mounted by the module, as before"
sessions 2 sxstore-no "broker=no"
assert_eq "$SESSIONS_LOOPS" 3 "broker=no: a loop device each, besides the daemon's"

log "an image the broker refuses is mounted by the module, with a notice"
probe_dev='stat -c %u /usr/bin/sysd-hello'
session sxstore-dev sxst1 sh -c "$probe_dev"
assert_eq "$LAST_RC" 0 "refused by the broker: the session runs"
assert_eq "$LAST_STDOUT" 4601 "refused by the broker: merged all the same, sxst1's files"
assert_log "not from the broker's layer store" "refused by the broker"
assert_log "device nodes" "refused by the broker: the broker's reason"

# ---------------------------------------------------------------------------------------------
# merge --namespace-of into two targets (user + mount namespaces of their own).
# ns_merge_two WHAT LEFT [OPTIONS...]: LEFT loop devices remain once the targets are gone (the
# daemon's pin, or none).
ns_merge_two() {
        local what=$1 left=$2 t1 t2 i
        shift 2
        start_userns -m --propagation private
        t1=$STARTED_PID
        start_userns -m --propagation private
        t2=$STARTED_PID
        assert_ok sx "$@" --namespace-of="$t1" merge "$NSDIR/sysn.raw"
        assert_ok sx "$@" --namespace-of="$t2" merge "$NSDIR/sysn.raw"
        NS_LOOPS=$(loops_on "$NSDIR/sysn.raw")
        NS_OWNER="$(nsenter -t "$t1" -m stat -c %u:%g /usr/bin/sysn-hello 2>&1) $(nsenter -t "$t2" -m stat -c %u:%g /usr/bin/sysn-hello 2>&1)"
        NS_HELLO=$(nsenter -t "$t2" -m /usr/bin/sysn-hello 2>&1 || true)
        kill "$t1" "$t2" 2>/dev/null || true
        wait "$t1" "$t2" 2>/dev/null || true
        bg_pids_remove "$t1"
        bg_pids_remove "$t2"
        for i in $(seq 1 100); do
                (($(loops_on "$NSDIR/sysn.raw") == left)) && break
                sleep 0.1
        done
        assert_eq "$(loops_on "$NSDIR/sysn.raw")" "$left" "$what, targets gone: loop devices left on sysn.raw"
}
log "merge --namespace-of, with the daemon"
ns_merge_two "namespace-of, daemon" 1
assert_eq "$NS_LOOPS" 1 "--namespace-of into 2 targets: one loop device (the daemon's)"
OWNER_WITH=$NS_OWNER
assert_eq "$NS_HELLO" "hello from sysn" "--namespace-of with the daemon: the extension works in the target"
log "merge --namespace-of of discovered images (opened in parallel), with the daemon"
install -d -m 0755 /run/extensions
install -o 0 -g 0 -m 0644 "$SCRATCH/sysn.raw" /run/extensions/sysn.raw
install -o 0 -g 0 -m 0644 "$SCRATCH/sysq.raw" /run/extensions/sysq.raw
start_userns -m --propagation private
t1=$STARTED_PID
start_userns -m --propagation private
t2=$STARTED_PID
assert_ok sx --namespace-of="$t1" merge
assert_ok sx --namespace-of="$t2" merge
assert_eq "$(loops_on /run/extensions/sysn.raw) $(loops_on /run/extensions/sysq.raw)" "1 1" \
        "--namespace-of, 2 discovered images into 2 targets: one loop device each image"
assert_eq "$(nsenter -t "$t2" -m /usr/bin/sysq-hello 2>&1 || true)" "hello from sysq" "--namespace-of, discovered: works"
kill "$t1" "$t2" 2>/dev/null || true
wait "$t1" "$t2" 2>/dev/null || true
bg_pids_remove "$t1"
bg_pids_remove "$t2"
stop_daemon
rm -f /run/extensions/sysn.raw /run/extensions/sysq.raw
log "merge --namespace-of, without the daemon"
wait_no_loops_on "$NSDIR/sysn.raw" "daemon stopped"
ns_merge_two "namespace-of, no daemon" 0
assert_eq "$NS_LOOPS" 2 "--namespace-of into 2 targets without the daemon: a loop device each (as before)"
assert_eq "$OWNER_WITH" "$NS_OWNER" "--namespace-of: ownership in the targets as without the daemon"
assert_not_contains "$LAST_STDERR" "broker" "--namespace-of without the daemon: nothing said about a broker"

# ---------------------------------------------------------------------------------------------
# A socket an ordinary user serves: root's clients check SO_PEERCRED before sending anything.
log "a socket served by an ordinary user"
FAKE_DIR=$SCRATCH/fake
install -d -o 4601 -g 4601 -m 0755 "$FAKE_DIR"
FAKE=$FAKE_DIR/sock
# (/usr/bin: the pyenv shim in PATH may be root's only)
setpriv --reuid=4601 --regid=4601 --clear-groups -- /usr/bin/python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
log = open(sys.argv[2], "a", buffering=1)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
    except OSError:
        pass
    log.write("connection bytes=%d\n" % n)
    c.close()
' "$FAKE" "$FAKE_DIR/log" 2>"$SCRATCH/fake.err" &
FAKE_PID=$!
while [[ ! -S $FAKE ]]; do
        kill -0 "$FAKE_PID" 2>/dev/null || { fail "the fake broker died: $(cat "$SCRATCH/fake.err")"; finish; }
        sleep 0.05
done

run sx run --broker="$FAKE" --private-users=no --image="$SYS/sysq.raw" -- true
assert_eq "$((LAST_RC != 0))" 1 "root's run --broker=(a user's socket) fails"
assert_one_stderr_line "not by root"

service sxstore-fake "system_dir=$SYS" user_dir= broker=$FAKE debug
session sxstore-fake sxst2 stat -c %u /usr/bin/sysq-hello
assert_eq "$LAST_STDOUT" 4602 "PAM with broker=(a user's socket): merged by the module"
assert_log "not by root" "PAM with broker=(a user's socket)"

start_userns -m --propagation private
t=$STARTED_PID
assert_ok sx --broker="$FAKE" --namespace-of="$t" merge "$NSDIR/sysn.raw"
assert_contains "$LAST_STDERR" "not by root" "--namespace-of --broker=(a user's socket): says so"
assert_eq "$(nsenter -t "$t" -m /usr/bin/sysn-hello 2>&1 || true)" "hello from sysn" \
        "--namespace-of --broker=(a user's socket): merged locally"
kill "$t" 2>/dev/null || true

sleep 0.2
got=$(cat "$FAKE_DIR/log" 2>/dev/null || true)
assert_contains "$got" "connection" "the user's socket was connected to"
if grep -q 'bytes=[1-9]' <<<"$got"; then
        fail "a root client sent a request to a socket served by uid 4601: $got"
else
        pass "nothing was sent to the socket served by uid 4601 ($(grep -c connection <<<"$got") connections)"
fi

# ---------------------------------------------------------------------------------------------
# A signed DDI (embedded verity and signature partitions): the broker sets verity up, the markers
# say so; the signer and root hash are the ones checked here.
log "a signed image through the broker: status tells the truth"
VDIR=$PRIV/verity
mkdir -m 0755 "$VDIR"
trust_test_cert
install -d -m 0755 "$ROOT/run/verity.d"
install -o 0 -g 0 -m 0644 "$TEST_CERT" "$ROOT/run/verity.d/sxtest.crt"
EXT_UID=65534 make_ext_ddi --sign "$SCRATCH/sysv.raw" sysv "${ext_lines[@]}"
install -o 0 -g 0 -m 0644 "$SCRATCH/sysv.raw" "$VDIR/sysv.raw"
# verity_layer PID: "verity checkedBy rootHash" of the target's /usr layer
verity_layer() {
        sx --namespace-of="$1" --json=short status | python3 -c '
import json, sys
for h in json.load(sys.stdin):
    if h["hierarchy"] == "/usr":
        for l in h["layers"]:
            print(l["verity"], l["checkedBy"], l["rootHash"])'
}
signed_merge() {
        local t1 t2
        start_userns -m --propagation private
        t1=$STARTED_PID
        start_userns -m --propagation private
        t2=$STARTED_PID
        assert_ok sx --namespace-of="$t1" merge "$VDIR/sysv.raw"
        assert_ok sx --namespace-of="$t2" merge "$VDIR/sysv.raw"
        V_LOOPS=$(loops_on "$VDIR/sysv.raw")
        V_LAYER=$(verity_layer "$t1")
        V_HELLO=$(nsenter -t "$t2" -m /usr/bin/sysv-hello 2>&1 || true)
        kill "$t1" "$t2" 2>/dev/null || true
        wait "$t1" "$t2" 2>/dev/null || true
        bg_pids_remove "$t1"
        bg_pids_remove "$t2"
}
start_daemon
signed_merge
assert_eq "$V_LOOPS" 1 "signed DDI, 2 targets, daemon: one loop device"
assert_eq "$V_LAYER" "signed broker $DDI_ROOTHASH" "signed DDI through the broker: status says signed, checked by the broker, the root hash"
assert_eq "$V_HELLO" "hello from sysv" "signed DDI through the broker: the extension works"
stop_daemon
signed_merge
assert_eq "$V_LOOPS" 2 "signed DDI, 2 targets, no daemon: a loop device each"
assert_eq "$V_LAYER" "signed userspace $DDI_ROOTHASH" "signed DDI without the daemon: checked here in userspace"

# ---------------------------------------------------------------------------------------------
# A wedged daemon (stopped: it still owns the socket, the kernel still queues connections) must
# not hold up a login: the module waits a short bound for the broker, then mounts the image itself.
log "a stopped daemon: the login is not held up"
start_daemon
kill -STOP "$DAEMON_PID"
t0=$(date +%s%N)
session sxstore sxst3 stat -c %u /usr/bin/sysq-hello
elapsed=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$DAEMON_PID"
log "login with the daemon stopped took ${elapsed} ms"
assert_eq "$LAST_RC" 0 "daemon stopped: the session runs"
assert_eq "$LAST_STDOUT" 4603 "daemon stopped: merged by the module, sxst3's files"
assert_eq "$((elapsed < 30000))" 1 "daemon stopped: the login took ${elapsed} ms, under 30 s"
assert_log "not from the broker's layer store" "daemon stopped: says why the module mounted it"
stop_daemon

# An ordinary user holds every connection the daemon takes (here the global limit is 4; a user with
# subordinate uids can reach the default 128 the same way): root's MountImage is refused at once
# (TooManyRequests), and the module mounts the image itself without waiting.
log "the daemon's connections all held by an ordinary user"
DAEMON_ARGS="--max-connections=4 --max-connections-per-uid=4"
start_daemon
DAEMON_ARGS=
HOLD=$SCRATCH/hold
install -d -o 4605 -g 4605 -m 0755 "$HOLD"
setpriv --reuid=4605 --regid=4605 --clear-groups -- /usr/bin/python3 -c '
import socket, sys, time
held = []
for i in range(8):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1]); held.append(s)
open(sys.argv[2], "w").close()
time.sleep(120)
' "$SOCK" "$HOLD/ready" 2>"$SCRATCH/hold.err" &
HOLD_PID=$!
BG_PIDS="$BG_PIDS $HOLD_PID"
for i in $(seq 1 100); do
        [[ -e $HOLD/ready ]] && break
        sleep 0.1
done
sleep 0.5       # the daemon has accepted (and counted) them
t0=$(date +%s%N)
session sxstore sxst4 stat -c %u /usr/bin/sysq-hello
elapsed=$((($(date +%s%N) - t0) / 1000000))
log "login with all connections held took ${elapsed} ms"
assert_eq "$LAST_RC" 0 "connections held: the session runs"
assert_eq "$LAST_STDOUT" 4604 "connections held: merged by the module, sxst4's files"
assert_eq "$((elapsed < 30000))" 1 "connections held: the login took ${elapsed} ms, under 30 s"
assert_log "too many connections" "connections held: says the broker refused"
kill "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
bg_pids_remove "$HOLD_PID"
stop_daemon

# Idle exit with a session open: the session's layer lies below its overlay, in no mountinfo.
# Whether the daemon's gc keeps the pin (it does since the gc sees overlays' layers) or drops it
# and exits (before: sharing with later sessions lost), nothing the session uses may go: its files
# stay readable, and the image's loop device stays until the session closes, then goes.
log "idle exit of the daemon while a session uses its layer"
DAEMON_ARGS="--idle-exit=2"
start_daemon
DAEMON_ARGS=
bg_session_start sxstore sxst6 'stat -c %u /usr/bin/sysq-hello; /usr/bin/sysq-hello'
for i in $(seq 1 100); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
        log "idle exit: the daemon kept running with the session open (its pin is seen in use)"
else
        log "idle exit: the daemon exited with the session open (its pin was not seen in use)"
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        rm -f "$SOCK"
fi
assert_eq "$(loops_on "$SYS/sysq.raw")" 1 "idle exit, session open: its loop device stays"
bg_session_stop
assert_eq "$BG_RC" 0 "idle exit: the session ran to its end"
assert_eq "$BG_OUT" "4606
hello from sysq" "idle exit: the session still reads its layer, as sxst6's"
stop_daemon
wait_no_loops_on "$SYS/sysq.raw" "idle exit, session closed"

# Which files root's clients hand to a broker: a root-served socket that records the path of every
# image fd it receives (and then hangs up: the module mounts the image itself). A user's own signed
# image and a signed image a symlink in the system directory leads to in the user's home are merged
# locally, never sent; the root-owned one next to them is the only file sent.
log "what root's clients send to the broker: never a user's file"
UDIR=$(user_dir_of sxst7)
EXT_UID=65534 make_ext_ddi --sign "$SCRATCH/sysu.raw" sysu "${ext_lines[@]}"
install -o 4607 -g 4607 -m 0644 "$SCRATCH/sysu.raw" "$UDIR/sysu.raw"
install -d -o 4607 -g 4607 -m 0755 "$HOMES/sxst7/other"
EXT_UID=65534 make_ext_ddi --sign "$SCRATCH/sysl.raw" sysl "${ext_lines[@]}"
install -o 4607 -g 4607 -m 0644 "$SCRATCH/sysl.raw" "$HOMES/sxst7/other/sysl.raw"
LDIR=$PRIV/link
mkdir -m 0755 "$LDIR"
ln -s "$HOMES/sxst7/other/sysl.raw" "$LDIR/sysl.raw"
install -o 0 -g 0 -m 0644 "$SCRATCH/sysq.raw" "$LDIR/sysq.raw"
RSOCK=$PRIV/recorder.sock
/usr/bin/python3 -c '
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
log = open(sys.argv[2], "a", buffering=1)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        msg, anc, _, _ = c.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i"); fds.frombytes(data[:len(data) - len(data) % 4])
                for fd in fds:
                    log.write("sent %s\n" % os.readlink("/proc/self/fd/%d" % fd)); os.close(fd)
    except OSError:
        pass
    c.close()
' "$RSOCK" "$SCRATCH/recorder.log" 2>"$SCRATCH/recorder.err" &
REC_PID=$!
BG_PIDS="$BG_PIDS $REC_PID"
while [[ ! -S $RSOCK ]]; do
        kill -0 "$REC_PID" 2>/dev/null || { fail "the recorder died: $(cat "$SCRATCH/recorder.err")"; finish; }
        sleep 0.05
done
: >"$SCRATCH/recorder.log"
service sxstore-sent "system_dir=$LDIR" "broker=$RSOCK" debug
session sxstore-sent sxst7 stat -c %u /usr/bin/sysu-hello /usr/bin/sysl-hello /usr/bin/sysq-hello
assert_eq "$(tr '\n' ' ' <<<"$LAST_STDOUT")" "4607 4607 4607 " "recorder: all three merged, as sxst7's"
sleep 0.2
assert_eq "$(cat "$SCRATCH/recorder.log")" "sent $LDIR/sysq.raw" "recorder: only the root-owned image was sent"
kill "$REC_PID" 2>/dev/null || true
wait "$REC_PID" 2>/dev/null || true
bg_pids_remove "$REC_PID"

finish
