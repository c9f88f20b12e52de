# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers shared by the PAM tests (test-pam, test-pam-attacks). Source after $TEST_LIB and
# lib-merge.sh; call enter_private_ns, then require_pam and setup_pam_scratch.
#
# Everything happens in the test's private mount namespace: the test users exist only in copies of
# /etc/passwd and /etc/group bind-mounted there, the PAM services in a copy of /etc/pam.d
# bind-mounted over it, /dev is a tmpfs with the nodes we need plus a /dev/log socket, so that the
# module's pam_syslog messages can be read (the machine's /dev is never written), and $PRIV is a
# directory in the namespace's private /run tmpfs: wholly root-owned and not writable by anyone
# else, the place for trusted system images and verity.d certificates (/run/verity.d).

require_pam() {
        [[ -n ${PAM_MODULE:-} && -f $PAM_MODULE ]] || skip "no PAM module (PAM_MODULE unset: built without libpam?)"
        [[ -n ${PAM_SESSION:-} && -x $PAM_SESSION ]] || skip "no pam-session driver (PAM_SESSION unset)"
        require_cmd mkfs.erofs losetup python3 logger mknod setpriv
}

# The module checks extension-release against the real host's os-release (the one in /).
HOST_ID=$(. /etc/os-release && echo "$ID")
HOST_VERSION_ID=$(. /etc/os-release && echo "${VERSION_ID:-}")

PRIV=
SYSLOG=
HOMES=
HOOK=
BG_PIDS=${BG_PIDS:-}

# Loop devices over files in $PRIV are not $SCRATCH files: lib.sh's cleanup would not detach them.
_pam_cleanup() {
        local rc=$? dev file
        set +e
        if [[ -n $BG_PIDS ]]; then
                kill $BG_PIDS 2>/dev/null
                wait $BG_PIDS 2>/dev/null
                BG_PIDS=
        fi
        if [[ -n $PRIV ]]; then
                while read -r dev file; do
                        case $file in
                                "$PRIV"/*) losetup -d "$dev" 2>/dev/null ;;
                        esac
                done < <(losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null)
        fi
        (exit "$rc")
        _merge_cleanup
}

# bg_pids_remove PID: PID ended, do not kill it at exit.
bg_pids_remove() {
        local l=" $BG_PIDS "
        l=${l// $1 / }
        BG_PIDS=${l# }
}

setup_pam_scratch() {
        [[ ${SYSEXT_IDMAP_TEST_IN_NS:-} == 1 ]] || { echo "call enter_private_ns first" >&2; exit 1; }
        setup_merge_scratch
        trap _pam_cleanup EXIT
        # The users must be able to reach their homes below the scratch dir (mktemp made it 0700).
        chmod 0755 "$SCRATCH"
        # No variable of the caller may steer the module (or the CLI) in these tests.
        unset SYSTEMD_SYSEXT_HIERARCHIES SYSEXT_IDMAP_VERITY_DIRS SYSEXT_IDMAP_RUNTIME_DIR \
              SYSEXT_IDMAP_FORCE_PATH_LAYERS SYSEXT_IDMAP_FAULT SYSEXT_IDMAP_FAULT_LIST \
              SYSEXT_IDMAP_NO_BENEATH SYSEXT_IDMAP_ATTACHED_SUBMOUNTS
        # /run is the namespace's own tmpfs (enter_private_ns), so all of this goes with it.
        [[ $(stat -c '%u %a' /run) == "0 755" ]] || { echo "/run is not a private 0755 root tmpfs" >&2; exit 1; }
        PRIV=$(mktemp -d "/run/sxtest-$TEST_NAME.XXXXXX")
        chmod 0755 "$PRIV"
        install -d -m 0755 /run/verity.d
        log "host os-release: ID=$HOST_ID VERSION_ID=$HOST_VERSION_ID; private dir $PRIV"
        setup_dev
        setup_syslog
        HOMES=$SCRATCH/home
        mkdir -p "$HOMES"
        setup_pam_services
}

# ---------------------------------------------------------------------------------------------
# /dev with a syslog socket. Character devices are copied by major:minor; loop nodes are made for
# numbers the kernel has not created yet too (LOOP_CTL_GET_FREE may hand out a new one).

setup_dev() {
        local d=$SCRATCH/dev n maj min step i
        mkdir -p "$d"
        mount -t tmpfs -o mode=0755 tmpfs "$d"
        for n in null zero full random urandom tty loop-control mapper/control; do
                [[ -e /dev/$n ]] || continue
                mkdir -p "$(dirname "$d/$n")"
                maj=$((16#$(stat -c %t "/dev/$n"))); min=$((16#$(stat -c %T "/dev/$n")))
                mknod -m "$(stat -c %a "/dev/$n")" "$d/$n" c "$maj" "$min"
        done
        step=1
        if [[ -b /dev/loop0 && -b /dev/loop1 ]]; then
                step=$(( 16#$(stat -c %T /dev/loop1) - 16#$(stat -c %T /dev/loop0) ))
        fi
        for i in $(seq 0 1023); do
                mknod -m 0660 "$d/loop$i" b 7 $((i * step))
        done
        mkdir -p "$d/pts" "$d/shm"
        ln -s /proc/self/fd "$d/fd"
        ln -s /proc/self/fd/0 "$d/stdin"
        ln -s /proc/self/fd/1 "$d/stdout"
        ln -s /proc/self/fd/2 "$d/stderr"
        mount --rbind /dev/pts "$d/pts" 2>/dev/null || true
        mount -t tmpfs -o mode=1777 tmpfs "$d/shm"
        mount --move "$d" /dev
}

setup_syslog() {
        local i
        SYSLOG=$SCRATCH/syslog
        : >"$SYSLOG"
        python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
with open(sys.argv[1] + ".pid", "w") as p:
    p.write("%d\n" % os.getpid())
f = open(sys.argv[1], "ab", buffering=0)
while True:
    f.write(s.recv(65536).rstrip(b"\n") + b"\n")
' "$SYSLOG" &
        BG_PIDS="$BG_PIDS $!"
        for i in $(seq 1 100); do [[ -S /dev/log ]] && break; sleep 0.1; done
        [[ -S /dev/log ]] || { fail "no /dev/log listener after 10 s"; finish; }
        # $! may be a launcher's pid (a pyenv shim runs python3 as a child of its own): the
        # listener's own pid is what cleanup must kill, or it keeps meson's output open.
        for i in $(seq 1 100); do [[ -s $SYSLOG.pid ]] && break; sleep 0.1; done
        [[ -s $SYSLOG.pid ]] && BG_PIDS="$BG_PIDS $(cat "$SYSLOG.pid")"
        log_start
        logger --socket=/dev/log -- "sxtest hello"
        assert_contains "$(log_since)" "sxtest hello" "syslog capture through /dev/log"
}

# log_start; ...; log_since: what was logged in between (synchronised with a marker message).
LOG_OFF=0
log_start() { LOG_OFF=$(stat -c %s "$SYSLOG"); }
log_since() {
        local m="sxtest-mark-$RANDOM$RANDOM" i
        logger --socket=/dev/log -- "$m" 2>/dev/null || true
        for i in $(seq 1 100); do grep -q "$m" "$SYSLOG" && break; sleep 0.1; done
        tail -c +$((LOG_OFF + 1)) "$SYSLOG" | grep -v -- "$m" || true
}

# ---------------------------------------------------------------------------------------------
# Test users

# add_user NAME UID: a user with a 0755 home of its own below $HOMES, only in this namespace.
add_user() {
        getent passwd "$1" >/dev/null && skip "user $1 exists on this machine"
        add_test_user "$1" "$2" "$2" "$HOMES/$1" /bin/sh
        mkdir -p "$HOMES/$1"
        chown "$2:$2" "$HOMES/$1"
        chmod 0755 "$HOMES/$1"
}

# as_user UID CMD...: run CMD with UID's ids and no supplementary groups.
as_user() {
        local u=$1
        shift
        setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"
}

# user_dir_of NAME: NAME's ~/.local/share/extensions, made (owned by NAME) if missing.
user_dir_of() {
        local h=$HOMES/$1 u
        u=$(id -u "$1")
        install -d -o "$u" -g "$u" -m 0755 "$h/.local" "$h/.local/share" "$h/.local/share/extensions"
        echo "$h/.local/share/extensions"
}

# ---------------------------------------------------------------------------------------------
# PAM services, in a copy of /etc/pam.d bind-mounted over it. The hook runs after our module in
# the session's namespace at open_session and again at close_session (after our close_session:
# Linux-PAM runs the session stack in the same order both times) and records the mounts there.

setup_pam_services() {
        HOOK=$SCRATCH/hook
        mkdir -p "$HOOK"
        cat >"$SCRATCH/hook.sh" <<EOF
#!/bin/sh
# pam_exec: PAM_TYPE, PAM_SERVICE, PAM_USER come from libpam.
f=$HOOK/\$PAM_SERVICE.\$PAM_USER.\$PAM_TYPE
readlink /proc/self/ns/mnt >"\$f.ns"
cat /proc/self/mountinfo >"\$f.mountinfo"
exit 0
EOF
        chmod 0755 "$SCRATCH/hook.sh"
        cp -a /etc/pam.d "$SCRATCH/pam.d"
        mount --bind "$SCRATCH/pam.d" /etc/pam.d
}

# service NAME MODULE-ARGS...: our module, then the hook.
service() {
        local name=$1
        shift
        {
                echo "# sysext-idmap $TEST_NAME"
                echo "session required $PAM_MODULE $*"
                echo "session optional pam_exec.so $SCRATCH/hook.sh"
        } >"$SCRATCH/pam.d/$name"
}

# service_lines NAME LINE...: a service with exactly these lines.
service_lines() {
        local name=$1
        shift
        { echo "# sysext-idmap $TEST_NAME"; printf '%s\n' "$@"; } >"$SCRATCH/pam.d/$name"
}

# ---------------------------------------------------------------------------------------------
# Sessions

# session SERVICE USER CMD...: run CMD as USER in a PAM session ($LAST_STDOUT, $LAST_RC, $SESSION_LOG).
# $session_with: a command prefix for the PAM caller (e.g. setpriv --groups=..., env VAR=...).
SESSION_LOG=
session_with=()
session() {
        log_start
        run "${session_with[@]}" timeout 120 "$PAM_SESSION" "$@"
        SESSION_LOG=$(log_since)
}

# probe SERVICE USER [ARGS...]: session running $PROBE ARGS (KEY=VALUE lines, see val).
probe() {
        session "$1" "$2" "$PROBE" "${@:3}"
        if ((LAST_RC != 0)); then
                fail "session $1 for $2: exit $LAST_RC"
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /' | head -n 20
        fi
}
val() {         # val KEY: from the last probe
        printf '%s\n' "$LAST_STDOUT" | sed -n "s|^$1=||p" | head -n 1
}

# bg_session_start SERVICE USER [FINAL-CMD]: a session whose command waits until
# bg_session_stop, then runs FINAL-CMD (sh -c) with its output in $BG_OUT. $BG_PID is the pid of
# the session's command (0 if it did not start within 60 s), $bg_session_with a prefix as
# $session_with.
BG_PID=0
BG_DRIVER=
BG_SYNC=
BG_OUT=
BG_RC=0
bg_session_with=()
bg_session_start() {
        local i
        BG_SYNC=$(mktemp -d "$SCRATCH/sync.XXXXXX")
        chmod 0777 "$BG_SYNC"
        log_start
        timeout 600 "${bg_session_with[@]}" "$PAM_SESSION" "$1" "$2" sh -c \
                "echo \$\$ >$BG_SYNC/ready.tmp && mv $BG_SYNC/ready.tmp $BG_SYNC/ready; while [ ! -e $BG_SYNC/go ]; do sleep 0.1; done; ${3:-true}" \
                >"$BG_SYNC/out" 2>"$BG_SYNC/err" &
        BG_DRIVER=$!
        BG_PIDS="$BG_PIDS $BG_DRIVER"
        # Up to 60 s, or until the driver gave up.
        for i in $(seq 1 600); do
                [[ -s $BG_SYNC/ready ]] && break
                kill -0 "$BG_DRIVER" 2>/dev/null || break
                sleep 0.1
        done
        BG_PID=$(cat "$BG_SYNC/ready" 2>/dev/null || echo 0)
        if ((BG_PID == 0)); then
                fail "background session $1 for $2 did not start: $(cat "$BG_SYNC/err" 2>/dev/null)"
        fi
}
bg_session_stop() {
        touch "$BG_SYNC/go"
        BG_RC=0
        wait "$BG_DRIVER" || BG_RC=$?
        bg_pids_remove "$BG_DRIVER"
        BG_OUT=$(cat "$BG_SYNC/out")
        SESSION_LOG=$(log_since)
        BG_PID=0
}

# ---------------------------------------------------------------------------------------------
# Mounts and loop devices

# mount_opts FILE MOUNTPOINT: "OPTIONS FSTYPE" of the topmost mount on MOUNTPOINT in a mountinfo file
mount_opts() {
        awk -v m="$2" '$5 == m { for (i = 7; $i != "-"; i++) ; o = $6 " " $(i + 1) } END { print o }' "$1"
}
# assert_overlay_opts "OPTIONS FSTYPE" WHAT WANT...: the fs type is overlay and every WANT is
# among the options; a WANT of !OPT means OPT must not be.
assert_overlay_opts() {
        local got=$1 what=$2 o
        shift 2
        if [[ $got != *" overlay" ]]; then
                fail "$what: no overlay (topmost mount: '$got')"
                return
        fi
        for o in "$@"; do
                if [[ $o == !* ]]; then
                        if [[ ,${got%% *}, != *",${o#!},"* ]]; then
                                pass "$what: overlay mounted without ${o#!} ($got)"
                        else
                                fail "$what: overlay mounted with ${o#!} ($got)"
                        fi
                elif [[ ,${got%% *}, == *",$o,"* ]]; then
                        pass "$what: overlay mounted with $o ($got)"
                else
                        fail "$what: overlay without $o ($got)"
                fi
        done
}
assert_no_overlay() {
        if [[ $1 == *" overlay" ]]; then fail "$2: an overlay is there ($1)"; else pass "$2: no overlay ('$1')"; fi
}
assert_log() {  # assert_log NEEDLE WHAT
        assert_contains "$SESSION_LOG" "$1" "$2: module log"
}

# loops_all: every loop device as "NAME BACK-FILE" (backing file names may contain spaces).
loops_all() {
        losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null | sort
}

# assert_no_loop_on FILE WHAT: no loop device is backed by FILE, now (no waiting: call it while a
# session is running, to see whether the kernel is reading FILE).
assert_no_loop_on() {
        local got
        got=$(losetup -j "$1" 2>&1 || true)
        if [[ -z $got ]]; then
                pass "$2: no loop device over ${1/#$SCRATCH/\$SCRATCH}"
        else
                fail "$2: a loop device is backed by ${1/#$SCRATCH/\$SCRATCH}: $got"
        fi
}

# ---------------------------------------------------------------------------------------------
# Images

# ext_src NAME: a source tree for NAME matching the host's os-release, owned 65534:65534, printed path
ext_src() {
        local src=$SCRATCH/src-$1
        rm -rf "$src"
        make_ext_tree "$src" "$1" "ID=$HOST_ID" "VERSION_ID=$HOST_VERSION_ID"
        chown -R 65534:65534 "$src"
        echo "$src"
}

# make_signed_erofs OUT.raw SRC [KEY CERT]: an erofs of SRC (the tree's ownership kept) with the
# sidecars OUT.verity (hash tree), OUT.roothash and OUT.roothash.p7s (signed by KEY/CERT, default
# the test key). Sets SIGNED_ROOTHASH.
make_signed_erofs() {
        require_cmd veritysetup openssl
        local out=$1 src=$2 key=${3:-} cert=${4:-} base
        if [[ -z $key ]]; then
                make_test_key
                key=$TEST_KEY
                cert=$TEST_CERT
        fi
        base=${out%.raw}
        rm -f "$out" "$base.verity" "$base.roothash" "$base.roothash.p7s"
        mkfs.erofs --quiet "$out" "$src" >/dev/null
        truncate -s %4096 "$out"
        veritysetup format "$out" "$base.verity" --root-hash-file="$base.roothash.tmp" >/dev/null
        SIGNED_ROOTHASH=$(cat "$base.roothash.tmp")
        rm -f "$base.roothash.tmp"
        printf '%s\n' "$SIGNED_ROOTHASH" >"$base.roothash"
        printf '%s' "$SIGNED_ROOTHASH" | openssl smime -sign -noattr -binary -signer "$cert" \
                -inkey "$key" -outform DER -out "$base.roothash.p7s"
}

# sidecars_of IMAGE.raw: the sidecar files of IMAGE that exist.
sidecars_of() {
        local b=${1%.raw} s
        for s in verity roothash roothash.p7s usrhash usrhash.p7s; do
                [[ -e $b.$s || -L $b.$s ]] && echo "$b.$s"
        done
        return 0
}

# install_image UID IMAGE.raw DIR: IMAGE and its sidecars into DIR, owned by UID, 0644.
install_image() {
        local u=$1 img=$2 dir=$3 f
        for f in "$img" $(sidecars_of "$img"); do
                install -o "$u" -g "$u" -m 0644 "$f" "$dir/"
        done
}

# trust_test_cert: the test key's certificate in /run/verity.d (the private /run), root-owned 0644.
trust_test_cert() {
        make_test_key
        install -o 0 -g 0 -m 0644 "$TEST_CERT" /run/verity.d/sxtest.crt
}
