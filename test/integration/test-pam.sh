#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# pam_sysext_idmap.so through libpam (test/pam/pam-session.c): per-session extensions from a
# trusted system dir and signed images in the user's home, mapped user:NAME, nodev, invisible to
# the host and to other sessions, gone after close_session; unsigned user images, untrusted system
# images, corrupt images, users without extensions, root, module options (hierarchies= among
# them); and the CLI counterparts (--idmap=user:NAME, run --user=). The attacks of issue 11 are in
# test-pam-attacks.sh.
#
# The setup (private /dev with a syslog socket, users, a private /etc/pam.d, $PRIV in the
# namespace's own /run) is lib-pam.sh's.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
source "$(dirname "$TEST_LIB")/lib-pam.sh"
enter_private_ns "$@"
require_binary
require_pam
require_cmd dump.erofs veritysetup openssl
setup_pam_scratch
cd /

# ---------------------------------------------------------------------------------------------
# Test users: sxuser (4242, with extensions in its home) and sxother (4343, without a user dir).

add_user sxuser 4242
add_user sxother 4343
assert_eq "$(getent passwd sxuser | cut -d: -f3,4,6)" "4242:4242:$HOMES/sxuser" "sxuser in the private namespace"
assert_eq "$(getent passwd sxother | cut -d: -f3,4)" "4343:4343" "sxother in the private namespace"

# ---------------------------------------------------------------------------------------------
# Images. sysa: in the system dir $PRIV/sys (every directory from / down root-owned 0755),
# root-owned 0644 (trusted), files on disk 65534; it also ships etc/sxtest-etc (hierarchies=).
# usera: in sxuser's ~/.local/share/extensions, owned by sxuser, signed by the test certificate
# (in /run/verity.d) through .roothash/.roothash.p7s/.verity sidecars, so trusted; files on disk
# 65534 except usr/bin/suid-id, a copy of id(1) owned 0:0 with mode 4755. userb: unsigned, next
# to usera: left out.

SYS=$PRIV/sys
mkdir -m 0755 "$SYS"
trust_test_cert
UDIR=$(user_dir_of sxuser)

src=$(ext_src sysa)
mkdir -p "$src/etc"
echo "sxtest-etc from sysa" >"$src/etc/sxtest-etc"
chown -R 65534:65534 "$src/etc"
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SCRATCH/sysa.raw" "$src" >/dev/null
install -o 0 -g 0 -m 0644 "$SCRATCH/sysa.raw" "$SYS/sysa.raw"

src=$(ext_src usera)
cp /usr/bin/id "$src/usr/bin/suid-id"
chown 0:0 "$src/usr/bin/suid-id"
chmod 4755 "$src/usr/bin/suid-id"
make_signed_erofs "$SCRATCH/usera.raw" "$src"     # keeps the tree's ownership
install_image 4242 "$SCRATCH/usera.raw" "$UDIR"

src=$(ext_src userb)
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$SCRATCH/userb.raw" "$src" >/dev/null
install -o 4242 -g 4242 -m 0644 "$SCRATCH/userb.raw" "$UDIR/userb.raw"

# On-disk owner from dump.erofs (1.5 prints the permission bits only), the mode from a plain mount.
d=$(dump.erofs --path=/usr/bin/suid-id "$UDIR/usera.raw" 2>&1 || true)
if grep -Eq 'Uid: 0[[:space:]]+Gid: 0[[:space:]]' <<<"$d"; then
        pass "usera.raw: usr/bin/suid-id is 0:0 on disk (dump.erofs)"
else
        fail "usera.raw: usr/bin/suid-id is not 0:0 on disk:"
        printf '%s\n' "$d" | sed 's/^/    /' | head -n 20
fi
mkdir -p "$SCRATCH/mnt"
mount -o ro,loop "$SCRATCH/usera.raw" "$SCRATCH/mnt"
assert_eq "$(stat -c '%a %u:%g' "$SCRATCH/mnt/usr/bin/suid-id")" "4755 0:0" "usera.raw: suid-id in a plain mount"
umount "$SCRATCH/mnt"
d=$(dump.erofs --path=/usr/bin/usera-hello "$UDIR/usera.raw" 2>&1 || true)
assert_contains "$d" "Uid: 65534" "dump.erofs of usera-hello"

# ---------------------------------------------------------------------------------------------
# PAM services (lib-pam.sh: our module, then a pam_exec hook recording the session's mounts).

service sxtest "system_dir=$SYS" debug
service sxtest-nouser "system_dir=$SYS" user_dir= debug
service sxtest-nosys system_dir= debug
service sxtest-bogus "system_dir=$SYS" debug bogus_option=1
service sxtest-usr "system_dir=$SYS" user_dir= hierarchies=/usr debug
service sxtest-etc "system_dir=$SYS" user_dir= hierarchies=/usr:/opt:/etc debug

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
for f in /usr/bin/usera-hello /usr/bin/userb-hello /usr/bin/sysa-hello /opt/usera/data /opt/sysa/data /usr/bin/suid-id /usr/lib/extension-release.d/extension-release.usera; do
        echo "owner:$f=$(stat -c %u:%g "$f" 2>/dev/null || echo missing)"
done
echo "mode:suid-id=$(stat -c %a /usr/bin/suid-id 2>/dev/null || echo missing)"
echo "run:usera=$(/usr/bin/usera-hello 2>&1)"
echo "run:sysa=$(/usr/bin/sysa-hello 2>&1)"
echo "suid-id=$(/usr/bin/suid-id -u 2>&1)"
echo "mnt:/usr=$(mnt /usr)"
echo "mnt:/opt=$(mnt /opt)"
echo "mnt:/etc=$(mnt /etc)"
echo "etc=$(cat /etc/sxtest-etc 2>/dev/null || echo missing)"
echo "host-id=$(/usr/bin/id -u)"
EOF
chmod 0755 "$PROBE"

TEST_NS=$(readlink /proc/self/ns/mnt)

# assert_no_priv_loops WHAT: no loop device is backed by a file in $PRIV (the system images);
# autoclear loop devices go asynchronously, so allow 10 s.
assert_no_priv_loops() {
        local i left
        for i in $(seq 1 100); do
                left=$(loops_all | awk -v s="$PRIV" 'index($2, s "/") == 1')
                [[ -z $left ]] && break
                sleep 0.1
        done
        if [[ -z $left ]]; then
                pass "$1: no loop device backed by a system image remains"
        else
                fail "$1: loop devices remain: $left"
        fi
}

wait_loops_settled
snapshot_state "$SCRATCH/state.before"
HOST_USR_OVERLAYS=$(grep -c ' /usr .* - overlay ' /proc/1/mountinfo || true)

# ---------------------------------------------------------------------------------------------
log "1. sxuser sees the system and its signed extension as its own, can run them; the unsigned one is left out; /usr is nodev"
probe sxtest sxuser
assert_eq "$(val uid)" 4242 "1: uid in the session"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "1: owner of /usr/bin/usera-hello (user image)"
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "1: owner of /usr/bin/sysa-hello (system image)"
assert_eq "$(val owner:/opt/usera/data)" 4242:4242 "1: owner of /opt/usera/data"
assert_eq "$(val owner:/opt/sysa/data)" 4242:4242 "1: owner of /opt/sysa/data"
assert_eq "$(val run:usera)" "hello from usera" "1: usera-hello runs"
assert_eq "$(val run:sysa)" "hello from sysa" "1: sysa-hello runs"
assert_eq "$(val host-id)" 4242 "1: the host's /usr/bin/id still runs (stacked on the host's /usr)"
# Every layer is trusted (a root-owned system image, an image signed by a trusted key and served
# from a copy the user cannot write): nodev as every overlay, but no nosuid.
assert_overlay_opts "$(val mnt:/usr)" "1: /usr in the session" nodev '!nosuid'
assert_overlay_opts "$(val mnt:/opt)" "1: /opt in the session" nodev '!nosuid'
assert_eq "$(val owner:/usr/bin/userb-hello)" missing "1: the unsigned user image userb is left out"
if grep userb.raw <<<"$SESSION_LOG" | grep 'leaving it out' >/dev/null; then
        pass "1: module log: userb.raw left out"
else
        fail "1: no module log line leaving userb.raw out:"
        printf '%s\n' "$SESSION_LOG" | sed 's/^/    log: /' | head -n 10
fi
assert_no_loop_on "$UDIR/userb.raw" "1: after the session"
if [[ $(val ns) != "$TEST_NS" ]]; then pass "1: the session has a mount namespace of its own"; else fail "1: the session runs in the test's mount namespace"; fi
assert_log "merged 2 extension(s) for sxuser" "1"
assert_overlay_opts "$(mount_opts "$HOOK/sxtest.sxuser.open_session.mountinfo" /usr)" "1: /usr seen by pam_exec after open_session" nodev

# ---------------------------------------------------------------------------------------------
log "2. a setuid-root file in the user image is not root-owned and does not elevate (no nosuid needed)"
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
        # The signed image is served from a private copy: the kernel does not read the user's file.
        assert_no_loop_on "$UDIR/usera.raw" "3: while the session runs"
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
        assert_overlay_opts "$(val mnt:/usr)" "5.$round: /usr in the session" nodev
        f=$HOOK/sxtest.sxuser.close_session.mountinfo
        if [[ -f $f ]]; then
                assert_no_overlay "$(mount_opts "$f" /usr)" "5.$round: /usr in the session after our close_session"
                assert_no_overlay "$(mount_opts "$f" /opt)" "5.$round: /opt in the session after our close_session"
                assert_eq "$(cat "$HOOK/sxtest.sxuser.close_session.ns")" "$(val ns)" "5.$round: close hook ran in the session's namespace"
        else
                fail "5.$round: the pam_exec hook did not run at close_session"
        fi
        assert_no_scratch_loops "5.$round: after the session"
        assert_no_priv_loops "5.$round: after the session"
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

# A system image that others may write is untrusted, and unsigned: left out.
chmod 0664 "$SYS/sysa.raw"
probe sxtest-nouser sxuser
assert_eq "$(val owner:/usr/bin/sysa-hello)" missing "8: group-writable system image left out"
assert_no_overlay "$(val mnt:/usr)" "8: group-writable system image: /usr"
if grep sysa.raw <<<"$SESSION_LOG" | grep 'leaving it out' >/dev/null; then
        pass "8: module log: group-writable sysa.raw left out"
else
        fail "8: no module log line leaving the group-writable sysa.raw out"
fi
chmod 0644 "$SYS/sysa.raw"
chown 4242:4242 "$SYS/sysa.raw"
probe sxtest-nouser sxother
assert_eq "$(val owner:/usr/bin/sysa-hello)" missing "8: system image not owned by root left out"
assert_no_overlay "$(val mnt:/usr)" "8: system image not owned by root: /usr"
chown 0:0 "$SYS/sysa.raw"

# hierarchies=: the module's only source of hierarchies (the environment is not read).
probe sxtest-usr sxuser
assert_eq "$(val owner:/usr/bin/sysa-hello)" 4242:4242 "8: hierarchies=/usr: sysa merged into /usr"
assert_overlay_opts "$(val mnt:/usr)" "8: hierarchies=/usr: /usr" nodev
assert_no_overlay "$(val mnt:/opt)" "8: hierarchies=/usr: /opt"
assert_eq "$(val owner:/opt/sysa/data)" missing "8: hierarchies=/usr: /opt/sysa"
probe sxtest-etc sxuser
assert_eq "$(val etc)" "sxtest-etc from sysa" "8: hierarchies=/usr:/opt:/etc: /etc/sxtest-etc"
assert_overlay_opts "$(val mnt:/etc)" "8: hierarchies=/usr:/opt:/etc: /etc" nodev
assert_overlay_opts "$(val mnt:/opt)" "8: hierarchies=/usr:/opt:/etc: /opt" nodev
probe sxtest-nouser sxuser
assert_eq "$(val etc)" missing "8: default hierarchies: /etc/sxtest-etc"
assert_no_overlay "$(val mnt:/etc)" "8: default hierarchies: /etc"

# A symlink in the user dir must not lead out of the home (the home is the root of the search)
# nor make root read a file the user cannot: a root-only image elsewhere. The images below are
# signed by the trusted key, with regular sidecars in the user dir: were the image reached, it
# would be merged.
src=$(ext_src secret)
make_signed_erofs "$SCRATCH/secret.raw" "$src"
chmod 0600 "$SCRATCH/secret.raw"
user_sidecars() {       # user_sidecars NAME [AS]: NAME's sidecars in the user dir, as AS's (default NAME)
        local f
        for f in $(sidecars_of "$SCRATCH/$1.raw"); do
                install -o 4242 -g 4242 -m 0644 "$f" "$UDIR/${2:-$1}${f#"$SCRATCH/$1"}"
        done
}
user_sidecars secret
user_sidecars secret secret2
ln -s "$SCRATCH/secret.raw" "$UDIR/secret.raw"
ln -s ../../../../../../../../../../.."$SCRATCH/secret.raw" "$UDIR/secret2.raw"
probe sxtest sxuser
assert_eq "$LAST_RC" 0 "8: exit status with symlinks to a root-only image"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "8: usera still merged next to the symlinks"
session sxtest sxuser sh -c 'ls /usr/bin/secret-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: a symlink to a root-only image outside the home is not merged"
rm -f "$UDIR"/secret.* "$UDIR"/secret2.*

# A world-readable image outside the home, reached by a symlink (absolute, and relative with
# enough ..): the home is the root of the search, so neither leads there.
src=$(ext_src outside)
make_signed_erofs "$SCRATCH/outside.raw" "$src"
chmod 0644 "$SCRATCH"/outside.*
user_sidecars outside
ln -s "$SCRATCH/outside.raw" "$UDIR/outside.raw"
session sxtest sxuser sh -c 'ls /usr/bin/outside-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: an absolute symlink to a readable image outside the home is not merged"
rm -f "$UDIR/outside.raw"
ln -s "../../../../../../../../../../..$SCRATCH/outside.raw" "$UDIR/outside.raw"
session sxtest sxuser sh -c 'ls /usr/bin/outside-hello 2>/dev/null || echo none'
assert_eq "$LAST_STDOUT" none "8: a relative symlink (../..) to a readable image outside the home is not merged"
rm -f "$UDIR"/outside.*

# Images in the user dir the user cannot read (put there by root, or hard links): they must be
# left out, since the module opens user images with the user's file access rights. The PAM
# caller runs as root with root's supplementary groups (here: 0), so mode 0640 root:root
# exercises the group check too.
for mode in 0600 0640; do
        install -o 0 -g 0 -m "$mode" "$SCRATCH/secret.raw" "$UDIR/secret.raw"
        user_sidecars secret
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
        rm -f "$UDIR"/secret.*
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
for f in "$SCRATCH"/outside.*; do install -m 0644 "$f" "$OUTD/"; done
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
assert_overlay_opts "$(mount_opts /proc/self/mountinfo "$R/usr")" "9: merge --idmap=user:sxuser: \$R/usr" nosuid nodev
assert_ok sx --root="$R" --no-reload unmerge
assert_no_scratch_loops "9: after unmerge"

assert_ok sx run --user=sxuser --image="$UDIR/usera.raw" -- id -u
assert_eq "$LAST_STDOUT" 4242 "9: run --user=sxuser -- id -u"
assert_ok sx run --user=sxuser --image="$UDIR/usera.raw" -- "$PROBE"
assert_eq "$(val owner:/usr/bin/usera-hello)" 4242:4242 "9: run --user=sxuser: usera-hello"
assert_eq "$(val suid-id)" 4242 "9: run --user=sxuser: euid of the setuid-root copy of id"
assert_overlay_opts "$(val mnt:/usr)" "9: run --user=sxuser: /usr" nosuid nodev
assert_no_scratch_loops "9: after run"
assert_no_priv_loops "at the end"

wait_loops_settled
assert_state_unchanged "$SCRATCH/state.before" "at the end"
finish
