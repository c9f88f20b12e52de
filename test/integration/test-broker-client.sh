#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The broker's clients (issue 14): `run` as an ordinary user (own ids -> 0, and
# --private-users=subuid through newuidmap) and `merge` as root of an unprivileged container
# (unshare --map-root-user, and a subuid-mapped namespace), against sysext-idmapd on a socket in
# this test's private mount namespace. Checks: the extension's files are visible and root-owned
# inside, nothing shows in our mount table (also while the sandbox runs), an image the user cannot
# read is not opened, the command's exit status passes through, and without a daemon a user gets
# one line saying so. Last, the store's gc: a superblock sandboxes use only through overlays stays
# shared across a gc and is released after the last one.
set -euo pipefail
source "$TEST_LIB"
enter_private_ns "$@"
require_binary
require_cmd setpriv unshare mkfs.erofs python3 newuidmap newgidmap
[[ -n ${SYSEXT_IDMAPD:-} && -x ${SYSEXT_IDMAPD:-} ]] ||
        skip "no sysext-idmapd binary (SYSEXT_IDMAPD unset or not executable)"
DAEMON=("$SYSEXT_IDMAPD")
setup_scratch
chmod 0755 "$SCRATCH"

# The test user, its subordinate ids and its files: in this mount namespace only.
U=sxbroker
U_UID=4251
U_GID=4252
SUB=300000
add_test_user "$U" "$U_UID" "$U_GID" /nonexistent /usr/sbin/nologin
for f in subuid subgid; do
        echo "$U:$SUB:65536" >"$SCRATCH/$f"
        touch "/etc/$f"
        mount --bind "$SCRATCH/$f" "/etc/$f"
done
as_user() { setpriv --reuid="$U_UID" --regid="$U_GID" --init-groups -- "$@"; }

UDIR=$SCRATCH/user                      # on disk: erofs mounts a regular file only off a real file system
mkdir "$UDIR"
chown "$U_UID:$U_GID" "$UDIR"
PUB=$(mktemp -d /tmp/broker-pub.XXXXXX)
chmod 1777 "$PUB"

# The "host" the daemon serves: a root with a trusted extension, and the user's own image.
ROOT=/run/broker-client-root          # our private /run: every component root-controlled, as the daemon requires
make_root "$ROOT"
make_ext_erofs "$ROOT/var/lib/extensions/hostext.raw" hostext
mkdir -p "$ROOT/etc/sysext-idmap"
printf '[Broker]\nAllowUnsignedUntrusted=yes\n' >"$ROOT/etc/sysext-idmap/sysext-idmapd.conf"
make_ext_erofs "$UDIR/userext.raw" userext
chown "$U_UID:$U_GID" "$UDIR/userext.raw"
make_ext_erofs "$SCRATCH/secret.raw" secret
chmod 0600 "$SCRATCH/secret.raw"
[[ ! -e /usr/bin/userext-hello && ! -e /usr/bin/hostext-hello ]] || skip "/usr already carries the test's files"

SOCK_DIR=/run/sysext-idmapd             # our private /run: the default path works
SOCK=$SOCK_DIR/io.systemd.MountFileSystem
snapshot_state "$SCRATCH/state.before"

# ---------------------------------------------------------------------------------------------
log "without a daemon"
run as_user "$SYSEXT_IDMAP" run --image="$UDIR/userext.raw" -- true
assert_eq "$((LAST_RC != 0))" 1 "a user's run without the broker fails"
assert_one_stderr_line "not running"

# ---------------------------------------------------------------------------------------------
mkdir -p "$SOCK_DIR"
"${DAEMON[@]}" --listen="$SOCK" --root="$ROOT" --idle-exit=0 >"$SCRATCH/daemon.log" 2>&1 &
DAEMON_PID=$!
stop_daemon() { kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; }
# The daemon goes first, then lib.sh's cleanup with our exit status.
_broker_exit() { local rc=$?; stop_daemon; (exit "$rc"); _cleanup; }
trap _broker_exit EXIT
# Bounded by progress: the daemon either makes its socket or dies.
while [[ ! -S $SOCK ]]; do
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$SCRATCH/daemon.log"; fail "the daemon died at start"; finish; }
        sleep 0.05
done
pass "the daemon listens at $SOCK"

# check_sandbox WHAT DIR: what the command recorded in DIR.
check_sandbox() {
        local what=$1 d=$2
        assert_eq "$(cat "$d/uid")" 0 "$what: uid inside"
        assert_eq "$(cat "$d/owner")" "0:0" "$what: owner of the extension's file inside"
        assert_eq "$(cat "$d/hello")" "hello from userext" "$what: the extension's command runs"
        assert_eq "$(cat "$d/opt")" "userext data" "$what: /opt carries the extension"
}

# sandbox_script: records what it sees, waits until the test says go (bounded by the test's
# progress, not a timer), exits 7.
SANDBOX='d=$1
id -u >"$d/uid"
stat -c %u:%g /usr/bin/userext-hello >"$d/owner"
userext-hello >"$d/hello" 2>&1
cat /opt/userext/data >"$d/opt"
awk "{ print \$1, \$2, \$3 }" /proc/self/uid_map >"$d/uid_map"
touch "$d/ready"
while [ ! -e "$d/go" ]; do sleep 0.05; done
exit 7'

for form in "" subuid; do
        what="run as a user${form:+ --private-users=$form}"
        log "$what"
        d=$(mktemp -d "$PUB/run.XXXXXX")
        chmod 1777 "$d"
        as_user "$SYSEXT_IDMAP" run ${form:+--private-users=$form} --image="$UDIR/userext.raw" \
                -- sh -c "$SANDBOX" sh "$d" 2>"$d/stderr" &
        pid=$!
        while [[ ! -e $d/ready ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        if [[ -e $d/ready ]]; then
                assert_not_contains "$(cat /proc/self/mountinfo)" "userext" "$what: our mount table while it runs"
                assert_eq "$(grep -c ' overlay ' /proc/self/mountinfo || true)" \
                        "$(grep -c ' overlay ' "$SCRATCH/state.before" || true)" "$what: no overlay of ours while it runs"
        fi
        touch "$d/go"
        rc=0
        wait "$pid" || rc=$?
        assert_eq "$rc" 7 "$what: the command's exit status"
        if [[ ! -e $d/ready ]]; then
                fail "$what: the command did not run"
                sed 's/^/    stderr: /' "$d/stderr"
                continue
        fi
        check_sandbox "$what" "$d"
        if [[ $form == subuid ]]; then
                assert_eq "$(cat "$d/uid_map")" "0 $SUB 65536" "$what: uid_map"
        else
                assert_eq "$(cat "$d/uid_map")" "0 $U_UID 1" "$what: uid_map"
        fi
done
assert_state_unchanged "$SCRATCH/state.before" "after the user's runs"

# A kernel whose overlayfs takes no layer fds (before 6.7, as Debian 12's 6.1; the test hook makes
# the client take this path here): the client asks the broker for the finished overlay, built over
# the daemon's own /usr (its --root's, so the host's /usr is bound there for the command's shell).
log "run as a user where overlayfs takes no layer fds: the broker's finished overlay"
mount --bind /usr "$ROOT/usr"
run as_user env SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 "$SYSEXT_IDMAP" run --image="$UDIR/userext.raw" \
        -- sh -c 'id -u; stat -c %u:%g /usr/bin/userext-hello; userext-hello; cat /opt/userext/data'
umount "$ROOT/usr"
assert_eq "$LAST_RC" 0 "run with the broker's finished overlay succeeds"
[[ $LAST_RC == 0 ]] || printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /'
assert_eq "$LAST_STDOUT" "0
0:0
hello from userext
userext data" "the broker's overlay: uid, owner, command, /opt"
run as_user env SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 "$SYSEXT_IDMAP" run --image="$UDIR/userext.raw" --discover -- true
assert_eq "$((LAST_RC != 0))" 1 "--image= with --discover where overlayfs takes no layer fds fails"
assert_one_stderr_line "Linux 6.7"
assert_state_unchanged "$SCRATCH/state.before" "after the finished overlays"

log "an image the user cannot read"
run as_user "$SYSEXT_IDMAP" run --image="$SCRATCH/secret.raw" -- true
assert_eq "$((LAST_RC != 0))" 1 "run with a root-only image fails"
assert_one_stderr_line "Permission denied"

log "--broker= names the socket"
mkdir -p "$UDIR/elsewhere"
touch "$UDIR/elsewhere/sock"
mount --bind "$SOCK" "$UDIR/elsewhere/sock"
assert_ok as_user "$SYSEXT_IDMAP" run --broker="$UDIR/elsewhere/sock" --image="$UDIR/userext.raw" -- userext-hello
assert_eq "$LAST_STDOUT" "hello from userext" "run --broker=PATH"
umount "$UDIR/elsewhere/sock"
run as_user "$SYSEXT_IDMAP" run --broker="$UDIR/elsewhere/none" --image="$UDIR/userext.raw" -- true
assert_one_stderr_line "not running"

log "root through the broker (--broker= given)"
for form in no pick; do
        assert_ok "$SYSEXT_IDMAP" run --broker="$SOCK" --private-users=$form --image="$UDIR/userext.raw" \
                -- sh -c 'stat -c %u:%g /usr/bin/userext-hello; userext-hello'
        assert_eq "$LAST_STDOUT" "0:0
hello from userext" "root's run --private-users=$form through the broker"
done
assert_state_unchanged "$SCRATCH/state.before" "after root's runs"

# ---------------------------------------------------------------------------------------------
# Containers: the host's trusted extension merged on the container's own /usr and /opt.
CONTAINER='set -e
"$1" merge
stat -c %u:%g /usr/bin/hostext-hello
hostext-hello
cat /opt/hostext/data
awk "{ print \$1, \$2, \$3 }" /proc/self/uid_map'
check_container() {
        local what=$1 map=$2
        if ((LAST_RC != 0)); then
                fail "$what: exit $LAST_RC"
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /'
                return
        fi
        pass "$what: merge and checks ran"
        assert_eq "$LAST_STDOUT" "0:0
hello from hostext
hostext data
$map" "$what: owner, command, /opt, uid_map"
        assert_contains "$LAST_STDERR" "Merged extensions into '/usr'" "$what: merge says so"
}
log "container: unshare --map-root-user"
run as_user unshare --user --map-root-user --mount -- sh -c "$CONTAINER" sh "$SYSEXT_IDMAP"
check_container "--map-root-user container" "0 $U_UID 1"
log "container: subuid-mapped"
run as_user unshare --user --map-users="$SUB,0,65536" --map-groups="$SUB,0,65536" --setuid 0 --setgid 0 \
        --mount -- sh -c "$CONTAINER" sh "$SYSEXT_IDMAP"
check_container "subuid container" "0 $SUB 65536"
assert_state_unchanged "$SCRATCH/state.before" "after the containers"

# ---------------------------------------------------------------------------------------------
# The store's garbage collection: a sandbox uses the daemon's superblock only through its overlay,
# whose layers are in no mount table. A gc meanwhile must not lose it (the next sandbox gets the
# same superblock: one loop device in all); once both are gone a gc releases it (no loop device
# left) and the idle daemon exits.
log "gc while a sandbox uses a layer only through its overlay"
stop_daemon
HOSTIMG=$ROOT/var/lib/extensions/hostext.raw
wait_no_loops_on "$HOSTIMG" "the first daemon stopped"
GCLOG=$SCRATCH/daemon-gc.log
rm -f "$SOCK"
"${DAEMON[@]}" --listen="$SOCK" --root="$ROOT" --idle-exit=2 >"$GCLOG" 2>&1 &
DAEMON_PID=$!
while [[ ! -S $SOCK ]]; do
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$GCLOG"; fail "the daemon died at start"; finish; }
        sleep 0.05
done
# wait_log N TEXT: until the daemon has logged TEXT N times (bounded: 60 s, or its exit).
wait_log() {
        local i
        for i in $(seq 1 600); do
                (($(grep -c -- "$2" "$GCLOG" || true) >= $1)) && return 0
                kill -0 "$DAEMON_PID" 2>/dev/null || return 1
                sleep 0.1
        done
        return 1
}
GC_SANDBOX='d=$1
hostext-hello >"$d/hello" 2>&1
touch "$d/ready"
while [ ! -e "$d/go" ]; do sleep 0.05; done'
# gc_sandbox VAR WHAT: starts one, waits until it runs; VAR gets its directory, GC_PIDS its pid.
GC_PIDS=()
gc_sandbox() {
        local d
        d=$(mktemp -d "$PUB/gc.XXXXXX")
        chmod 1777 "$d"
        as_user "$SYSEXT_IDMAP" run --image="$HOSTIMG" -- sh -c "$GC_SANDBOX" sh "$d" 2>"$d/stderr" &
        GC_PIDS+=($!)
        while [[ ! -e $d/ready ]] && kill -0 "${GC_PIDS[-1]}" 2>/dev/null; do sleep 0.05; done
        [[ -e $d/ready ]] || sed 's/^/    stderr: /' "$d/stderr"
        assert_eq "$(cat "$d/hello" 2>/dev/null)" "hello from hostext" "$2: the extension's command runs"
        printf -v "$1" %s "$d"
}
gc_sandbox A "first sandbox"
assert_eq "$(loops_on "$HOSTIMG")" 1 "first sandbox: one loop device"
wait_log 1 "still in use" && pass "a gc ran while the first sandbox runs, and kept the device" ||
        { fail "no gc kept the layer of the running sandbox"; sed 's/^/    daemon: /' "$GCLOG"; }
gc_sandbox B "second sandbox"
assert_eq "$(loops_on "$HOSTIMG")" 1 "second sandbox after a gc: the same superblock (one loop device in all)"
touch "$A/go" "$B/go"
rc=0
for p in "${GC_PIDS[@]}"; do wait "$p" || rc=$?; done
assert_eq "$rc" 0 "both sandboxes exit 0"
wait_log 1 "in use nowhere: released" && pass "a gc released the layer after the last sandbox" ||
        { fail "no gc released the layer"; sed 's/^/    daemon: /' "$GCLOG"; }
wait_no_loops_on "$HOSTIMG" "after the gc"
rc=0
wait "$DAEMON_PID" || rc=$?
assert_eq "$rc" 0 "the daemon, its store empty, exits when idle"
assert_state_unchanged "$SCRATCH/state.before" "after the gc checks"

finish
