#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# pam_sysext_idmap.so through libpam (test/pam/pam-session.c): per-session extensions from the
# system dir and the user's home, mapped user:NAME, nosuid,nodev with a user layer, invisible to
# the host and to other sessions, gone after close_session; corrupt images, users without
# extensions, root, module options; and the CLI counterparts (--idmap=user:NAME, run --user=).
#
# Everything happens in the test's private mount namespace: the test users exist only in copies of
# /etc/passwd and /etc/group bind-mounted there, the PAM services in a copy of /etc/pam.d
# bind-mounted over it, and /dev is a tmpfs with the nodes we need plus a /dev/log socket, so
# that the module's pam_syslog messages can be read (the machine's /dev is never written).
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
[[ -n ${PAM_MODULE:-} && -f $PAM_MODULE ]] || skip "no PAM module (PAM_MODULE unset: built without libpam?)"
[[ -n ${PAM_SESSION:-} && -x $PAM_SESSION ]] || skip "no pam-session driver (PAM_SESSION unset)"
require_cmd mkfs.erofs dump.erofs losetup python3 logger mknod
setup_merge_scratch
cd /
unset SYSTEMD_SYSEXT_HIERARCHIES SYSEXT_IDMAP_VERITY_DIRS
# The user must be able to reach its home below the scratch dir (mktemp made it 0700).
chmod 0755 "$SCRATCH"

# The module checks extension-release against the real host's os-release (the one in /).
HOST_ID=$(. /etc/os-release && echo "$ID")
HOST_VERSION_ID=$(. /etc/os-release && echo "${VERSION_ID:-}")
log "host os-release: ID=$HOST_ID VERSION_ID=$HOST_VERSION_ID"

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
setup_dev

SYSLOG=$SCRATCH/syslog
: >"$SYSLOG"
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
os.chmod("/dev/log", 0o666)
f = open(sys.argv[1], "ab", buffering=0)
while True:
    f.write(s.recv(65536).rstrip(b"\n") + b"\n")
' "$SYSLOG" &
BG_PIDS=$!
for i in $(seq 1 50); do [[ -S /dev/log ]] && break; sleep 0.1; done
[[ -S /dev/log ]] || { fail "no /dev/log listener"; finish; }

# log_start; ...; log_since: what was logged in between (synchronised with a marker message).
LOG_OFF=0
log_start() { LOG_OFF=$(stat -c %s "$SYSLOG"); }
log_since() {
        local m="sxtest-mark-$RANDOM$RANDOM" i
        logger --socket=/dev/log -- "$m" 2>/dev/null || true
        for i in $(seq 1 50); do grep -q "$m" "$SYSLOG" && break; sleep 0.1; done
        tail -c +$((LOG_OFF + 1)) "$SYSLOG" | grep -v -- "$m" || true
}
log_start
logger --socket=/dev/log -- "sxtest hello"
assert_contains "$(log_since)" "sxtest hello" "syslog capture through /dev/log"

# ---------------------------------------------------------------------------------------------
# Test users: sxuser (4242, with extensions in its home) and sxother (4343, without a user dir).

HOMES=$SCRATCH/home
mkdir -p "$HOMES"
add_user() {    # add_user NAME UID
        getent passwd "$1" >/dev/null && skip "user $1 exists on this machine"
        add_test_user "$1" "$2" "$2" "$HOMES/$1" /bin/sh
        mkdir -p "$HOMES/$1"
        chown "$2:$2" "$HOMES/$1"
        chmod 0755 "$HOMES/$1"
}
add_user sxuser 4242
add_user sxother 4343
assert_eq "$(getent passwd sxuser | cut -d: -f3,4,6)" "4242:4242:$HOMES/sxuser" "sxuser in the private namespace"
assert_eq "$(getent passwd sxother | cut -d: -f3,4)" "4343:4343" "sxother in the private namespace"

# ---------------------------------------------------------------------------------------------
# Images. sysa: system dir, root-owned 0644 (trusted), files on disk 65534. usera: in sxuser's
# ~/.local/share/extensions, owned by sxuser, files on disk 65534 except usr/bin/suid-id, a copy
# of id(1) owned 0:0 with mode 4755.

SYS=$SCRATCH/sys
mkdir -p "$SYS"
UDIR=$HOMES/sxuser/.local/share/extensions

ext_src() {     # ext_src NAME: a source tree, owned 65534:65534, printed path
        local src=$SCRATCH/src-$1
        rm -rf "$src"
        make_ext_tree "$src" "$1" "ID=$HOST_ID" "VERSION_ID=$HOST_VERSION_ID"
        chown -R 65534:65534 "$src"
        echo "$src"
}

src=$(ext_src sysa)
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SYS/sysa.raw" "$src" >/dev/null
chmod 0644 "$SYS/sysa.raw"

src=$(ext_src usera)
cp /usr/bin/id "$src/usr/bin/suid-id"
chown 0:0 "$src/usr/bin/suid-id"
chmod 4755 "$src/usr/bin/suid-id"
mkfs.erofs --quiet "$SCRATCH/usera.raw" "$src" >/dev/null     # keeps the tree's ownership
install -d -o 4242 -g 4242 -m 0755 "$HOMES/sxuser/.local" "$HOMES/sxuser/.local/share" "$UDIR"
install -o 4242 -g 4242 -m 0644 "$SCRATCH/usera.raw" "$UDIR/usera.raw"

# On-disk owner from dump.erofs (1.5 prints the permission bits only), the mode from a plain mount.
d=$(dump.erofs --path=/usr/bin/suid-id "$UDIR/usera.raw" 2>&1 || true)
if grep -Eq 'Uid: 0[[:space:]]+Gid: 0[[:space:]]' <<<"$d"; then
        pass "usera.raw: usr/bin/suid-id is 0:0 on disk (dump.erofs)"
else
        fail "usera.raw: usr/bin/suid-id is not 0:0 on disk:"
        printf '%s\n' "$d" | sed 's/^/    /' | head -n 20
fi
mkdir -p "$SCRATCH/mnt"
mount -o ro,loop "$UDIR/usera.raw" "$SCRATCH/mnt"
assert_eq "$(stat -c '%a %u:%g' "$SCRATCH/mnt/usr/bin/suid-id")" "4755 0:0" "usera.raw: suid-id in a plain mount"
umount "$SCRATCH/mnt"
d=$(dump.erofs --path=/usr/bin/usera-hello "$UDIR/usera.raw" 2>&1 || true)
assert_contains "$d" "Uid: 65534" "dump.erofs of usera-hello"

# ---------------------------------------------------------------------------------------------
# PAM services, in a copy of /etc/pam.d. Each has a pam_exec hook after our module: it runs in
# the session's namespace at open_session and again at close_session (after our close_session,
# Linux-PAM runs the session stack in the same order both times) and records the mounts there.

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
service() {     # service NAME MODULE-ARGS...
        local name=$1
        shift
        {
                echo "# sysext-idmap test-pam"
                echo "session required $PAM_MODULE $*"
                echo "session optional pam_exec.so $SCRATCH/hook.sh"
        } >"$SCRATCH/pam.d/$name"
}
service sxtest "system_dir=$SYS" debug
service sxtest-nouser "system_dir=$SYS" user_dir= debug
service sxtest-nosys system_dir= debug
service sxtest-bogus "system_dir=$SYS" debug bogus_option=1
mount --bind "$SCRATCH/pam.d" /etc/pam.d

# ---------------------------------------------------------------------------------------------
# Helpers

# The probe runs as the user inside the session and prints KEY=VALUE lines.
PROBE=$SCRATCH/probe.sh
cat >"$PROBE" <<'EOF'
#!/bin/sh
# mount options (field 6) and fs type of the topmost mount on $1
mnt() {
        awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++) ; o = $6 " " $(i + 1) } END { print o }' /proc/self/mountinfo
}
echo "uid=$(id -u)"
echo "ns=$(readlink /proc/self/ns/mnt)"
for f in /usr/bin/usera-hello /usr/bin/sysa-hello /opt/usera/data /opt/sysa/data /usr/bin/suid-id /usr/lib/extension-release.d/extension-release.usera; do
        echo "owner:$f=$(stat -c %u:%g "$f" 2>/dev/null || echo missing)"
done
echo "mode:suid-id=$(stat -c %a /usr/bin/suid-id 2>/dev/null || echo missing)"
echo "run:usera=$(/usr/bin/usera-hello 2>&1)"
echo "run:sysa=$(/usr/bin/sysa-hello 2>&1)"
echo "suid-id=$(/usr/bin/suid-id -u 2>&1)"
echo "mnt:/usr=$(mnt /usr)"
echo "mnt:/opt=$(mnt /opt)"
echo "host-id=$(/usr/bin/id -u)"
EOF
chmod 0755 "$PROBE"

TEST_NS=$(readlink /proc/self/ns/mnt)

# session SERVICE USER CMD...: run CMD as USER in a PAM session ($LAST_STDOUT, $LAST_RC, $SESSION_LOG).
# $session_with: a command prefix for the PAM caller (e.g. setpriv --groups=...).
SESSION_LOG=
session_with=()
session() {
        log_start
        run "${session_with[@]}" timeout 60 "$PAM_SESSION" "$@"
        SESSION_LOG=$(log_since)
}
# probe SERVICE USER: session running the probe.
probe() {
        session "$1" "$2" "$PROBE"
        if ((LAST_RC != 0)); then
                fail "session $1 for $2: exit $LAST_RC"
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /' | head -n 20
        fi
}
val() {         # val KEY: from the last probe
        printf '%s\n' "$LAST_STDOUT" | sed -n "s|^$1=||p" | head -n 1
}
# mount_opts FILE MOUNTPOINT: "OPTIONS FSTYPE" of the topmost mount on MOUNTPOINT in a mountinfo file
mount_opts() {
        awk -v m="$2" '$5 == m { for (i = 7; $i != "-"; i++) ; o = $6 " " $(i + 1) } END { print o }' "$1"
}
# has_opts "OPTIONS FSTYPE" WANT...: the fs type is overlay and every WANT is among the options
assert_overlay_opts() {
        local got=$1 what=$2 o
        shift 2
        if [[ $got != *" overlay" ]]; then
                fail "$what: no overlay (topmost mount: '$got')"
                return
        fi
        for o in "$@"; do
                if [[ ,${got%% *}, == *",$o,"* ]]; then
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

wait_loops_settled
snapshot_state "$SCRATCH/state.before"
HOST_USR_OVERLAYS=$(grep -c ' /usr .* - overlay ' /proc/1/mountinfo || true)

# ---------------------------------------------------------------------------------------------
log "1. sxuser sees both extensions as its own, can run them; /usr overlay is nosuid,nodev"
probe sxtest sxuser
assert_eq "$(val uid)" 4242 "1: uid in the session"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "1: owner of /usr/bin/usera-hello (user image)"
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "1: owner of /usr/bin/sysa-hello (system image)"
assert_eq "$(val owner:/opt/usera/data)" 4242:4242 "1: owner of /opt/usera/data"
assert_eq "$(val owner:/opt/sysa/data)" 4242:4242 "1: owner of /opt/sysa/data"
assert_eq "$(val run:usera)" "hello from usera" "1: usera-hello runs"
assert_eq "$(val run:sysa)" "hello from sysa" "1: sysa-hello runs"
assert_eq "$(val host-id)" 4242 "1: the host's /usr/bin/id still runs (stacked on the host's /usr)"
assert_overlay_opts "$(val mnt:/usr)" "1: /usr in the session" nosuid nodev
assert_overlay_opts "$(val mnt:/opt)" "1: /opt in the session" nosuid nodev
if [[ $(val ns) != "$TEST_NS" ]]; then pass "1: the session has a mount namespace of its own"; else fail "1: the session runs in the test's mount namespace"; fi
assert_log "merged 2 extension(s) for sxuser" "1"
assert_overlay_opts "$(mount_opts "$HOOK/sxtest.sxuser.open_session.mountinfo" /usr)" "1: /usr seen by pam_exec after open_session" nosuid nodev

# ---------------------------------------------------------------------------------------------
log "2. a setuid-root file in the user image is not root-owned and does not elevate"
assert_eq "$(val owner:/usr/bin/suid-id)" 65534:65534 "2: owner of suid-id (on-disk 0:0) in the session"
assert_eq "$(val mode:suid-id)" 4755 "2: mode of suid-id in the session"
assert_eq "$(val suid-id)" 4242 "2: euid printed by the setuid-root copy of id"

# ---------------------------------------------------------------------------------------------
log "3. the host and another user's session do not see sxuser's image"
SYNC=$SCRATCH/sync
mkdir -p "$SYNC"
chmod 0777 "$SYNC"
timeout 120 "$PAM_SESSION" sxtest sxuser sh -c "echo \$\$ >$SYNC/ready.tmp && mv $SYNC/ready.tmp $SYNC/ready; while [ ! -e $SYNC/go ]; do sleep 0.1; done" \
        >"$SCRATCH/bg.out" 2>&1 &
BG_SESSION=$!
BG_PIDS="$BG_PIDS $BG_SESSION"
for i in $(seq 1 100); do [[ -s $SYNC/ready ]] && break; sleep 0.1; done
bgpid=$(cat "$SYNC/ready" 2>/dev/null || echo 0)
if ((bgpid > 0)); then
        pass "3: background session of sxuser is running (pid $bgpid)"
        assert_eq "$(cat "/proc/$bgpid/root/usr/bin/usera-hello" 2>/dev/null | tail -n 1)" 'echo "hello from usera"' \
                "3: usera-hello in the running session (through /proc/PID/root)"
        assert_eq "$(stat -c %u:%g "/proc/$bgpid/root/usr/bin/usera-hello" 2>&1)" 4242:4242 "3: owner of usera-hello in the running session"
else
        fail "3: background session of sxuser did not start: $(cat "$SCRATCH/bg.out")"
fi
for f in /usr/bin/usera-hello /usr/bin/sysa-hello /opt/usera; do
        if [[ -e $f ]]; then fail "3: $f is visible in the test namespace"; else pass "3: $f is not visible in the test namespace"; fi
done
assert_no_overlay "$(mount_opts /proc/self/mountinfo /usr)" "3: /usr in the test namespace"
assert_eq "$(grep -c ' /usr .* - overlay ' /proc/1/mountinfo || true)" "$HOST_USR_OVERLAYS" "3: overlays on /usr in PID 1's namespace (unchanged)"
probe sxtest sxother
assert_eq "$(val uid)" 4343 "3: uid in sxother's session"
assert_eq "$(val owner:/usr/bin/usera-hello)" missing "3: sxother does not see usera-hello"
assert_eq "$(val owner:/opt/usera/data)" missing "3: sxother does not see /opt/usera"
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4343:4343 "3: sxother sees sysa-hello as its own"
assert_eq "$(val run:sysa)" "hello from sysa" "3: sxother runs sysa-hello"
assert_overlay_opts "$(val mnt:/usr)" "3: /usr in sxother's session" ro
if [[ $(val ns) != "$(readlink "/proc/$bgpid/ns/mnt" 2>/dev/null)" ]]; then
        pass "3: sxother's session and sxuser's have different mount namespaces"
else
        fail "3: sxother's session shares sxuser's mount namespace"
fi
touch "$SYNC/go"
rc=0
wait "$BG_SESSION" || rc=$?
BG_PIDS=${BG_PIDS% $BG_SESSION}
assert_eq "$rc" 0 "3: exit status of the background session"

# ---------------------------------------------------------------------------------------------
log "4. a corrupt image in the user dir is left out, the login succeeds"
head -c 1M /dev/urandom >"$UDIR/bad.raw"
chown 4242:4242 "$UDIR/bad.raw"
probe sxtest sxuser
assert_eq "$LAST_RC" 0 "4: exit status of the session with bad.raw"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "4: usera still merged"
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "4: sysa still merged"
assert_eq "$(val run:usera)" "hello from usera" "4: usera-hello runs"
assert_log "bad.raw: no filesystem or partition table found; leaving it out" "4: bad.raw"
assert_log "merged 2 extension(s) for sxuser" "4"
printf '%s\n' "$SESSION_LOG" | sed 's/^/    log: /' | grep -i bad || true
rm -f "$UDIR/bad.raw"

# ---------------------------------------------------------------------------------------------
log "5. after close_session nothing is left; merging again works"
for round in 1 2; do
        rm -f "$HOOK"/sxtest.sxuser.*
        probe sxtest sxuser
        assert_eq "$(val run:usera)" "hello from usera" "5.$round: usera-hello runs"
        assert_overlay_opts "$(val mnt:/usr)" "5.$round: /usr in the session" nosuid nodev
        f=$HOOK/sxtest.sxuser.close_session.mountinfo
        if [[ -f $f ]]; then
                assert_no_overlay "$(mount_opts "$f" /usr)" "5.$round: /usr in the session after our close_session"
                assert_no_overlay "$(mount_opts "$f" /opt)" "5.$round: /opt in the session after our close_session"
                assert_eq "$(cat "$HOOK/sxtest.sxuser.close_session.ns")" "$(val ns)" "5.$round: close hook ran in the session's namespace"
        else
                fail "5.$round: the pam_exec hook did not run at close_session"
        fi
        assert_no_scratch_loops "5.$round: after the session"
        wait_loops_settled
        assert_state_unchanged "$SCRATCH/state.before" "5.$round: after the session"
done
if [[ $SESSION_LOG == *"cannot unmount"* ]]; then fail "5: close_session logged: $SESSION_LOG"; else pass "5: close_session logged no unmount failure"; fi

# ---------------------------------------------------------------------------------------------
log "6. a user without any extensions keeps the host's /usr"
probe sxtest-nosys sxother
assert_eq "$LAST_RC" 0 "6: exit status"
assert_eq "$(val uid)" 4343 "6: uid"
assert_no_overlay "$(val mnt:/usr)" "6: /usr in the session"
assert_no_overlay "$(val mnt:/opt)" "6: /opt in the session"
assert_eq "$(val ns)" "$TEST_NS" "6: no mount namespace of its own"
assert_eq "$(val owner:/usr/bin/sysa-hello)" missing "6: no sysa"

# ---------------------------------------------------------------------------------------------
log "7. root is skipped"
probe sxtest root
assert_eq "$(val uid)" 0 "7: uid"
assert_no_overlay "$(val mnt:/usr)" "7: /usr in root's session"
assert_eq "$(val ns)" "$TEST_NS" "7: no mount namespace of its own"
assert_eq "$(val owner:/usr/bin/sysa-hello)" missing "7: root does not get sysa"

# ---------------------------------------------------------------------------------------------
log "8. module options"
probe sxtest-nouser sxuser
assert_eq "$(val owner:/usr/bin/usera-hello)" missing "8: user_dir= leaves out the user image"
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "8: user_dir=: sysa still merged"
got=$(val mnt:/usr)
if [[ $got == *" overlay" && ,${got%% *}, != *,nosuid,* ]]; then
        pass "8: only a trusted system layer: /usr overlay without nosuid ($got)"
else
        fail "8: only a trusted system layer: /usr should be an overlay without nosuid, got '$got'"
fi
assert_log "merged 1 extension(s) for sxuser" "8: user_dir="

probe sxtest-bogus sxuser
assert_eq "$LAST_RC" 0 "8: exit status with an unknown option"
assert_eq "$(val uid)" 4242 "8: unknown option: the command ran"
assert_log "unknown option 'bogus_option=1'" "8: unknown option"
log "   (with an unknown option the module does nothing: /usr is '$(val mnt:/usr)')"

# A system image that others may write is untrusted: nosuid,nodev even without a user layer.
chmod 0664 "$SYS/sysa.raw"
probe sxtest-nouser sxuser
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "8: group-writable system image merged"
assert_overlay_opts "$(val mnt:/usr)" "8: group-writable system image" nosuid nodev
chmod 0644 "$SYS/sysa.raw"
chown 4242:4242 "$SYS/sysa.raw"
probe sxtest-nouser sxother
assert_overlay_opts "$(val mnt:/usr)" "8: system image not owned by root" nosuid nodev
chown 0:0 "$SYS/sysa.raw"

# A symlink in the user dir must not lead out of the home (the home is the root of the search)
# nor make root read a file the user cannot: a root-only image elsewhere.
src=$(ext_src secret)
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SCRATCH/secret.raw" "$src" >/dev/null
chmod 0600 "$SCRATCH/secret.raw"
ln -s "$SCRATCH/secret.raw" "$UDIR/secret.raw"
ln -s ../../../../../../../../../../.."$SCRATCH/secret.raw" "$UDIR/secret2.raw"
probe sxtest sxuser
assert_eq "$LAST_RC" 0 "8: exit status with symlinks to a root-only image"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "8: usera still merged next to the symlinks"
session sxtest sxuser sh -c 'ls /usr/bin/secret-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: a symlink to a root-only image outside the home is not merged"
rm -f "$UDIR/secret.raw" "$UDIR/secret2.raw"

# A world-readable image outside the home, reached by a symlink (absolute, and relative with
# enough ..): the home is the root of the search, so neither leads there.
src=$(ext_src outside)
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SCRATCH/outside.raw" "$src" >/dev/null
chmod 0644 "$SCRATCH/outside.raw"
ln -s "$SCRATCH/outside.raw" "$UDIR/outside.raw"
session sxtest sxuser sh -c 'ls /usr/bin/outside-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: an absolute symlink to a readable image outside the home is not merged"
rm -f "$UDIR/outside.raw"
ln -s "../../../../../../../../../../..$SCRATCH/outside.raw" "$UDIR/outside.raw"
session sxtest sxuser sh -c 'ls /usr/bin/outside-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: a relative symlink (../..) to a readable image outside the home is not merged"
rm -f "$UDIR/outside.raw"

# Images in the user dir the user cannot read (put there by root, or hard links): they must be
# left out, since the module opens user images with the user's file access rights. The PAM
# caller runs as root with root's supplementary groups (here: 0), so mode 0640 root:root
# exercises the group check too.
for mode in 0600 0640; do
        install -o 0 -g 0 -m "$mode" "$SCRATCH/secret.raw" "$UDIR/secret.raw"
        if setpriv --reuid=4242 --regid=4242 --clear-groups cat "$UDIR/secret.raw" >/dev/null 2>&1; then
                fail "8: sxuser can read a root:root $mode file (test setup)"
        else
                pass "8: sxuser cannot read secret.raw (root:root $mode)"
        fi
        # Once as the test runs (no supplementary groups here), once with root's group 0 in the
        # caller's supplementary list, as a PAM caller may have (see the report / BUGS).
        for groups in none 0; do
                if [[ $groups == none ]]; then
                        session sxtest sxuser sh -c 'ls /usr/bin/secret-hello 2>/dev/null || echo none; ls /usr/bin/usera-hello'
                else
                        session_with=(setpriv --groups="$groups")
                        session sxtest sxuser sh -c 'ls /usr/bin/secret-hello 2>/dev/null || echo none; ls /usr/bin/usera-hello'
                        session_with=()
                fi
                assert_eq "$LAST_STDOUT" "none
/usr/bin/usera-hello" "8: an image in the user dir that sxuser cannot read (root:root $mode) is left out (caller's supplementary groups: $groups)"
                printf '%s\n' "$SESSION_LOG" | grep secret.raw | sed 's/^/    log: /' || true
        done
        rm -f "$UDIR/secret.raw"
done

# The user dir may be private to the user (0700): the module searches it as the user.
chmod 0700 "$HOMES/sxuser/.local"
session sxtest sxuser sh -c 'ls /usr/bin/usera-hello'
assert_eq "$LAST_STDOUT" /usr/bin/usera-hello "8: user dir below a 0700 directory is searched as the user"
chmod 0755 "$HOMES/sxuser/.local"

# Bad image_policy= / verity= values: logged, login succeeds (without extensions).
service sxtest-badpolicy "system_dir=$SYS" image_policy=bogus:stuff debug
service sxtest-badverity "system_dir=$SYS" verity=sometimes debug
for sv in badpolicy badverity; do
        session "sxtest-$sv" sxuser id -u
        assert_eq "$LAST_RC:$LAST_STDOUT" 0:4242 "8: $sv: the login succeeds"
        assert_log "extensions for sxuser left out" "8: $sv"
done

# The same through a race: discovery resolves the user dir with the home as root, but the image is
# opened again later by its path. sxuser swaps a directory of its own (holding a decoy named
# outside.raw) with a symlink to a directory outside the home, as fast as it can (renameat2
# RENAME_EXCHANGE); no session may ever merge the outside image.
OUTD=$SCRATCH/outd
mkdir -p "$OUTD" "$HOMES/sxuser/.local/share/e1"
install -m 0644 "$SCRATCH/outside.raw" "$OUTD/outside.raw"
cp "$UDIR/usera.raw" "$HOMES/sxuser/.local/share/e1/outside.raw"
ln -s "$OUTD" "$HOMES/sxuser/.local/share/e1x"
mv "$UDIR" "$UDIR.saved"
ln -s e1 "$UDIR"
chown -R -h 4242:4242 "$HOMES/sxuser/.local/share"
setpriv --reuid=4242 --regid=4242 --clear-groups /usr/bin/python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.path.join(sys.argv[1], n).encode() for n in ("e1", "e1x"))
while True:
    libc.renameat2(-100, a, -100, b, 2)
' "$HOMES/sxuser/.local/share" &
SWAPPER=$!
BG_PIDS="$BG_PIDS $SWAPPER"
hits=0
for i in $(seq 1 100); do
        session sxtest sxuser sh -c 'ls /usr/bin/outside-hello 2>/dev/null; true'
        if [[ $LAST_STDOUT == *outside-hello* ]]; then hits=$i; break; fi
done
kill "$SWAPPER"; wait "$SWAPPER" 2>/dev/null || true
BG_PIDS=${BG_PIDS% $SWAPPER}
if ((hits == 0)); then
        pass "8: a directory swapped for a symlink after discovery never led out of the home (100 sessions)"
else
        fail "8: session $hits merged $OUTD/outside.raw (outside the home) through a directory swapped for a symlink after discovery"
fi
rm -f "$UDIR"
mv "$UDIR.saved" "$UDIR"

# ---------------------------------------------------------------------------------------------
log "9. the CLI counterparts"
R=$SCRATCH/root
make_root "$R"
cp "$UDIR/usera.raw" "$R/var/lib/extensions/usera.raw"
assert_ok sx --root="$R" --idmap=user:sxuser --no-reload merge
assert_owner "$R/usr/bin/usera-hello" 4242:4242 "9: merge --idmap=user:sxuser: usera-hello"
assert_owner "$R/opt/usera/data" 4242:4242 "9: merge --idmap=user:sxuser: /opt/usera/data"
assert_owner "$R/usr/bin/suid-id" 65534:65534 "9: merge --idmap=user:sxuser: suid-id (on-disk 0:0)"
log "   merge --idmap=user:sxuser: $R/usr is '$(mount_opts /proc/self/mountinfo "$R/usr")'"
assert_ok sx --root="$R" --no-reload unmerge
assert_no_scratch_loops "9: after unmerge"

assert_ok sx run --user=sxuser --image="$UDIR/usera.raw" -- id -u
assert_eq "$LAST_STDOUT" 4242 "9: run --user=sxuser -- id -u"
assert_ok sx run --user=sxuser --image="$UDIR/usera.raw" -- "$PROBE"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "9: run --user=sxuser: usera-hello"
assert_eq "$(val suid-id)" 4242 "9: run --user=sxuser: euid of the setuid-root copy of id"
assert_overlay_opts "$(val mnt:/usr)" "9: run --user=sxuser: /usr" nosuid nodev
assert_no_scratch_loops "9: after run"

wait_loops_settled
assert_state_unchanged "$SCRATCH/state.before" "at the end"
finish
