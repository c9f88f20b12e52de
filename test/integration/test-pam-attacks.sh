#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Issue 11's attacks on the login feature, each performed through the real PAM stack (the libpam
# driver test/pam/pam-session and the setuid util-linux su, with a private copy of /etc/pam.d)
# and checked by effect: marker files written by root, the session's /usr through
# /proc/PID/root, mountinfo, `losetup -j`, file contents.
#
#   a. root runs the user's files: an unsigned image (erofs, squashfs, ext4, btrfs, xfs) or a
#      directory in ~/.local/share/extensions shadows /usr/bin/run-parts, which pam_exec runs as
#      root after our module; the same for an NSS module dlopen()ed by initgroups() as root
#   b. the environment steers root: SYSTEMD_SYSEXT_HIERARCHIES, SYSEXT_IDMAP_VERITY_DIRS,
#      SYSEXT_IDMAP_RUNTIME_DIR + _FORCE_PATH_LAYERS, SYSEXT_IDMAP_FAULT(_LIST), through the
#      driver and through su run by an ordinary user (AT_SECURE)
#   c. unsigned user images, and images signed by a certificate outside verity.d, never reach the
#      kernel
#   d. checked once, rewritten later: a signed user image is served from a copy the user cannot
#      write; copy_limit=
#   e. no nodev: a trusted extension's device node (CLI merge, run, PAM session)
#   f. a sidecar opened as root: symlinked NAME.verity / NAME.roothash
#   g. a system_dir whose path others can write is untrusted
#
# Every attack check here failed on the code before issue 11 was fixed (c1166b8); the positive
# controls next to them (the trusted merge still works, a signed image is merged) did not. This
# test does not need the test hooks: it checks that the module ignores them, in any build.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
source "$(dirname "$TEST_LIB")/lib-pam.sh"
enter_private_ns "$@"
require_binary
require_pam
require_cmd veritysetup openssl mksquashfs mkfs.ext4 cmp sha256sum dd timeout
setup_pam_scratch
cd /

add_user sxuser 4242
add_user sxother 4343
UDIR=$(user_dir_of sxuser)
ODIR=$(user_dir_of sxother)
IMG=$SCRATCH/img
mkdir -p "$IMG"

# Markers of the user's programs: MARKS is root-owned 0755, a file in it proves that root ran
# one; RAN is world-writable, a file in it proves that it ran at all (a setuid caller such as su
# runs pam_exec's children with the caller's real uid, and dash then drops the euid).
MARKS=$SCRATCH/marks
RAN=$SCRATCH/ran
mkdir -m 0755 "$MARKS"
mkdir -m 1777 "$RAN"
trust_test_cert

DEVOPEN=$SCRATCH/devopen.py
cat >"$DEVOPEN" <<'EOF'
import errno, os, sys
# Open a device node for writing: "opened" or the errno's name.
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK))
    print("opened")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF

PROBE=$SCRATCH/probe.sh
cat >"$PROBE" <<EOF
#!/bin/sh
# probe NAME...: which extensions this namespace's /usr has, and what the mounts look like
mnt() {
        awk -v m="\$1" '\$5 == m { for (i = 7; \$i != "-"; i++) ; o = \$6 " " \$(i + 1) } END { print o }' /proc/self/mountinfo
}
echo "uid=\$(id -u)"
echo "ns=\$(readlink /proc/self/ns/mnt)"
for n in "\$@"; do
        if [ -e /usr/lib/extension-release.d/extension-release.\$n ]; then echo "has:\$n=yes"; else echo "has:\$n=no"; fi
done
echo "etc=\$(cat /etc/sxtest-etc 2>/dev/null || echo missing)"
echo "run:sysa=\$(/usr/bin/sysa-hello 2>&1)"
for m in /usr /opt /etc; do echo "mnt:\$m=\$(mnt \$m)"; done
echo "dev=\$(/usr/bin/python3 $DEVOPEN /usr/share/sxdev/null)"
EOF
chmod 0755 "$PROBE"

# has NAME WANT WHAT: the last probe saw NAME's extension (yes) or not (no).
has() {
        assert_eq "$(val "has:$1")" "$2" "$3: extension $1 in the session's /usr"
}

# ---------------------------------------------------------------------------------------------
# The trusted system image: sysa in $PRIV/sys (/run/…, every directory root-owned 0755), 0644
# root:root, files on disk 65534; it also ships etc/sxtest-etc for the hierarchies attack.

SYSD=$PRIV/sys
mkdir -m 0755 "$SYSD"
src=$(ext_src sysa)
mkdir -p "$src/etc"
echo "sxtest-etc from sysa" >"$src/etc/sxtest-etc"
chown -R 65534:65534 "$src/etc"
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$IMG/sysa.raw" "$src" >/dev/null
install -o 0 -g 0 -m 0644 "$IMG/sysa.raw" "$SYSD/sysa.raw"

service sxtest "system_dir=$SYSD" debug
service sxtest-nouser "system_dir=$SYSD" user_dir= debug

wait_loops_settled
snapshot_state "$SCRATCH/state.before"

log "0. the trusted system image alone is merged (baseline)"
probe sxtest-nouser sxuser sysa
assert_eq "$(val uid)" 4242 "0: uid in the session"
assert_eq "$(val run:sysa)" "hello from sysa" "0: sysa-hello runs"
assert_overlay_opts "$(val mnt:/usr)" "0: /usr" nodev '!nosuid'
assert_eq "$(val etc)" missing "0: /etc/sxtest-etc"

# ---------------------------------------------------------------------------------------------
log "a. root runs the user's files: an unsigned image shadows /usr/bin/run-parts, run by pam_exec"
RPLOG=$SCRATCH/run-parts.log
service_lines sxrp \
        "session required $PAM_MODULE system_dir=$SYSD debug" \
        "session optional pam_exec.so log=$RPLOG /usr/bin/run-parts --version" \
        "session optional pam_exec.so $SCRATCH/hook.sh"

rp_src() {      # rp_src NAME: a tree shipping usr/bin/run-parts that records who ran it
        local s
        s=$(ext_src "$1")
        printf '#!/bin/sh\necho "euid $(id -u) ruid $(id -ru)" >%s/%s\nid -u >%s/%s\nexit 0\n' \
                "$RAN" "$1" "$MARKS" "$1" >"$s/usr/bin/run-parts"
        chmod 0755 "$s/usr/bin/run-parts"
        chown 65534:65534 "$s/usr/bin/run-parts"
        echo "$s"
}

# assert_not_ran WHAT NAME: NAME's run-parts never ran (as root or at all).
assert_not_ran() {
        if [[ -e $MARKS/$2 ]]; then
                fail "$1: root ran /usr/bin/run-parts from the user's image $2 (euid $(cat "$MARKS/$2"))"
        elif [[ -e $RAN/$2 ]]; then
                fail "$1: the PAM stack ran /usr/bin/run-parts from the user's image $2 ($(cat "$RAN/$2"))"
        else
                pass "$1: the user's run-parts from $2 never ran (no marker)"
        fi
}

# xfs_proto SRC: an mkfs.xfs protofile for SRC, ids and modes as in the tree.
xfs_proto() {
        python3 - "$1" <<'EOF'
import os, stat, sys
def mode(st):
    t = {stat.S_IFREG: "-", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c", stat.S_IFBLK: "b"}[stat.S_IFMT(st.st_mode)]
    return "%s%s%s%03o" % (t, "u" if st.st_mode & stat.S_ISUID else "-", "g" if st.st_mode & stat.S_ISGID else "-",
                          st.st_mode & 0o777)
def walk(d, depth):
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.lstat(p)
        line = "%s%s %s %d %d" % (" " * depth, n, mode(st), st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            print(line, p)
        elif stat.S_ISLNK(st.st_mode):
            print(line, os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            print(line)
            walk(p, depth + 1)
            print(" " * (depth + 1) + "$")
root = os.lstat(sys.argv[1])
print("/dev/null")
print("0 0")
print(mode(root), root.st_uid, root.st_gid)
walk(sys.argv[1], 1)
print("$")
EOF
}

# build_variant KIND NAME OUT: the tree of rp_src NAME as a KIND image (or directory) at OUT.
# Returns 2 if the tool for KIND is missing.
build_variant() {
        local kind=$1 name=$2 out=$3 s
        s=$(rp_src "$name")
        rm -rf "$out"
        case $kind in
                erofs)
                        mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$out" "$s" >/dev/null ;;
                squashfs)
                        mksquashfs "$s" "$out" -noappend -quiet -no-progress -force-uid 65534 -force-gid 65534 >/dev/null ;;
                ext4)
                        truncate -s 16M "$out"
                        mkfs.ext4 -q -F -d "$s" "$out" >/dev/null ;;
                btrfs)
                        command -v mkfs.btrfs >/dev/null || return 2
                        truncate -s 128M "$out"
                        mkfs.btrfs -q -f --rootdir "$s" "$out" >/dev/null ;;
                xfs)
                        command -v mkfs.xfs >/dev/null || return 2
                        xfs_proto "$s" >"$SCRATCH/xfs.proto"
                        truncate -s 320M "$out"
                        mkfs.xfs -q -f -p "$SCRATCH/xfs.proto" "$out" >/dev/null 2>&1 ||
                                mkfs.xfs -q -f -p file="$SCRATCH/xfs.proto" "$out" >/dev/null ;;
                dir)
                        cp -a "$s" "$out"
                        chown -R 4242:4242 "$out" ;;
        esac
}

# check_session_usr WHAT NAME...: the running background session's /usr has no layer of any NAME
# (its extension-release is not there), sysa is merged, and /usr/bin/run-parts is the host's.
check_session_usr() {
        local what=$1 n r=/proc/$BG_PID/root
        shift
        for n in "$@"; do
                if [[ -e $r/usr/lib/extension-release.d/extension-release.$n ]]; then
                        fail "$what: the session's /usr has a layer of the user's image $n"
                else
                        pass "$what: the session's /usr has no layer of the user's image $n"
                fi
        done
        if [[ -e $r/usr/lib/extension-release.d/extension-release.sysa ]]; then
                pass "$what: the trusted system image is merged in the session"
        else
                fail "$what: the trusted system image is not merged in the session"
        fi
        if cmp -s "$r/usr/bin/run-parts" /usr/bin/run-parts; then
                pass "$what: /usr/bin/run-parts in the session is the host's"
        else
                fail "$what: /usr/bin/run-parts in the session is not the host's"
        fi
}

rp_versions() { grep -c 'Debian run-parts program' "$RPLOG" 2>/dev/null || true; }

for kind in erofs squashfs ext4 btrfs xfs dir; do
        name=rp$kind
        if [[ $kind == dir ]]; then out=$UDIR/$name; else out=$IMG/$name.raw; fi
        rc=0
        build_variant "$kind" "$name" "$out" || rc=$?
        if ((rc == 2)); then
                log "   a.$kind: skipped, mkfs.$kind is missing"
                continue
        elif ((rc != 0)); then
                fail "a.$kind: could not build the image"
                continue
        fi
        if [[ $kind != dir ]]; then
                install -o 4242 -g 4242 -m 0644 "$out" "$UDIR/$name.raw"
                out=$UDIR/$name.raw
        fi
        rm -f "$MARKS/$name" "$RAN/$name"
        : >"$RPLOG"
        bg_session_start sxrp sxuser
        if ((BG_PID > 0)); then
                check_session_usr "a.$kind" "$name"
                [[ $kind != dir ]] && assert_no_loop_on "$out" "a.$kind: while the session runs"
                assert_overlay_opts "$(mount_opts "/proc/$BG_PID/mountinfo" /usr)" "a.$kind: /usr in the session" nodev
        fi
        bg_session_stop
        assert_eq "$BG_RC" 0 "a.$kind: exit status of the session"
        assert_not_ran "a.$kind" "$name"
        assert_eq "$(rp_versions)" 2 "a.$kind: the host's run-parts ran at open and at close_session"
        if grep "$name" <<<"$SESSION_LOG" | grep 'leaving it out' >/dev/null; then
                pass "a.$kind: module log names $name and leaves it out"
        else
                fail "a.$kind: no module log line leaving $name out:"
                printf '%s\n' "$SESSION_LOG" | sed 's/^/    log: /' | head -n 10
        fi
        rm -rf "$out"
done

# The same hole through NSS: the driver calls initgroups() as root in the session's namespace
# (as sshd and su do); with an initgroups service only the image provides, glibc dlopen()s it
# from the session's /usr.
if command -v cc >/dev/null && MULTIARCH=$(cc -print-multiarch 2>/dev/null) && [[ -n $MULTIARCH ]]; then
        cp /etc/nsswitch.conf "$SCRATCH/nsswitch.conf"
        echo "initgroups: sxtest files" >>"$SCRATCH/nsswitch.conf"
        mount --bind "$SCRATCH/nsswitch.conf" /etc/nsswitch.conf
        # nss_lib OUT MARKER: an NSS module whose constructor records its euid in MARKER.
        nss_lib() {
                printf '%s\n' '#include <fcntl.h>' '#include <stdio.h>' '#include <unistd.h>' \
                        '__attribute__((constructor)) static void sxtest_ctor(void) {' \
                        '        char b[32]; int n = snprintf(b, sizeof(b), "%u\n", (unsigned) geteuid());' \
                        "        int fd = open(\"$2\", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);" \
                        '        if (fd >= 0) { (void) !write(fd, b, (size_t) n); close(fd); }' \
                        '}' >"$SCRATCH/nss.c"
                cc -shared -fPIC -o "$1" "$SCRATCH/nss.c"
        }
        src=$(ext_src unss)
        mkdir -p "$src/usr/lib/$MULTIARCH"
        nss_lib "$src/usr/lib/$MULTIARCH/libnss_sxtest.so.2" "$MARKS/nss-pam"
        chown -R 65534:65534 "$src/usr/lib"
        mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$IMG/unss.raw" "$src" >/dev/null
        install -o 4242 -g 4242 -m 0644 "$IMG/unss.raw" "$UDIR/unss.raw"
        probe sxtest sxuser unss sysa
        has unss no "a.nss"
        has sysa yes "a.nss"
        if [[ -e $MARKS/nss-pam ]]; then
                fail "a.nss: initgroups() as root loaded the user's NSS module (euid $(cat "$MARKS/nss-pam"))"
        else
                pass "a.nss: the user's NSS module was never loaded by root (no marker)"
        fi
        rm -f "$UDIR/unss.raw"

        # run --user: NSS and credentials before any layer is visible.
        src=$(ext_src rnss)
        mkdir -p "$src/usr/lib/$MULTIARCH"
        nss_lib "$src/usr/lib/$MULTIARCH/libnss_sxtest.so.2" "$MARKS/nss-run"
        mkfs.erofs --quiet "$IMG/rnss.raw" "$src" >/dev/null
        assert_ok sx run --user=sxuser --image="$IMG/rnss.raw" -- sh -c 'test -e /usr/lib/extension-release.d/extension-release.rnss && id -u'
        assert_eq "$LAST_STDOUT" 4242 "a.nss: run --user=sxuser ran with the image merged"
        if [[ -e $MARKS/nss-run ]]; then
                fail "a.nss: run --user loaded the image's NSS module as euid $(cat "$MARKS/nss-run") (initgroups after the layers)"
        else
                pass "a.nss: run --user never loaded the image's NSS module (no marker)"
        fi
        umount /etc/nsswitch.conf
else
        log "   a.nss: skipped, no C compiler for the NSS module"
fi

# ---------------------------------------------------------------------------------------------
log "b. the environment steers root: through the driver and through su (setuid, AT_SECURE)"
# sxuser's own certificate, in its home; uself is signed by it, in both users' extension dirs.
CERTS=$HOMES/sxuser/certs
mkdir -p "$CERTS"
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$CERTS/self.key" -out "$CERTS/self.crt" \
        -days 365 -subj /CN=sxuser-self 2>/dev/null
chown -R 4242:4242 "$CERTS"
src=$(ext_src uself)
make_signed_erofs "$IMG/uself.raw" "$src" "$CERTS/self.key" "$CERTS/self.crt"
install_image 4242 "$IMG/uself.raw" "$UDIR"
install_image 4343 "$IMG/uself.raw" "$ODIR"

log "c. an image signed by a certificate that is not in verity.d never reaches the kernel"
probe sxtest sxuser uself sysa
has uself no "c"
has sysa yes "c"
bg_session_start sxtest sxuser
if ((BG_PID > 0)); then
        assert_no_loop_on "$UDIR/uself.raw" "c: while the session runs"
fi
bg_session_stop
if grep uself <<<"$SESSION_LOG" | grep 'leaving it out' >/dev/null; then
        pass "c: module log leaves uself out"
else
        fail "c: no module log line leaving uself out"
fi

# env_attacks HOW RUNNER...: RUNNER (a command prefix that takes env assignments through `env`)
# opens a session for TARGET ($target) running the probe; each variable must be ignored.
env_attacks() {
        local how=$1 env what
        shift
        rm -rf /run/nologin
        run "$@" SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc -- "$PROBE" sysa
        assert_eq "$LAST_RC" 0 "b.$how SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: exit status"
        assert_eq "$(val run:sysa)" "hello from sysa" "b.$how SYSTEMD_SYSEXT_HIERARCHIES: the trusted merge works"
        assert_eq "$(val etc)" missing "b.$how SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: /etc/sxtest-etc in the session"
        assert_no_overlay "$(val mnt:/etc)" "b.$how SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: /etc in the session"

        run "$@" SYSEXT_IDMAP_VERITY_DIRS="$CERTS" -- "$PROBE" uself sysa
        assert_eq "$LAST_RC" 0 "b.$how SYSEXT_IDMAP_VERITY_DIRS=~/certs: exit status"
        assert_eq "$(val has:uself)" no "b.$how SYSEXT_IDMAP_VERITY_DIRS=~/certs: the self-signed image in the session"
        assert_eq "$(val has:sysa)" yes "b.$how SYSEXT_IDMAP_VERITY_DIRS=~/certs: the trusted image in the session"

        for env in "SYSEXT_IDMAP_FAULT=1" ""; do
                what="RUNTIME_DIR+FORCE_PATH_LAYERS${env:++FAULT=1}"
                run "$@" SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 $env -- "$PROBE" sysa
                assert_eq "$LAST_RC" 0 "b.$how $what: exit status"
                if [[ -e /run/nologin ]]; then
                        fail "b.$how $what: root created /run/nologin ($(find /run/nologin | head -n 3 | tr '\n' ' '))"
                else
                        pass "b.$how $what: /run/nologin was not created"
                fi
                assert_eq "$(val run:sysa)" "hello from sysa" "b.$how $what: the trusted merge works"
                rm -rf /run/nologin
        done

        run "$@" SYSEXT_IDMAP_FAULT=1 -- "$PROBE" sysa
        assert_eq "$(val run:sysa)" "hello from sysa" "b.$how SYSEXT_IDMAP_FAULT=1: the trusted merge works"
        run "$@" SYSEXT_IDMAP_FAULT_LIST=1 -- "$PROBE" sysa
        assert_eq "$(val run:sysa)" "hello from sysa" "b.$how SYSEXT_IDMAP_FAULT_LIST=1: the trusted merge works"
        assert_not_contains "$LAST_STDOUT$LAST_STDERR" "fault-point" "b.$how SYSEXT_IDMAP_FAULT_LIST=1: output"
}

# The driver as root: env VARS... pam-session sxtest sxuser CMD...
via_driver() {
        local -a vars=()
        while [[ $1 != -- ]]; do vars+=("$1"); shift; done
        shift
        timeout 120 env "${vars[@]}" "$PAM_SESSION" sxtest sxuser "$@"
}
env_attacks driver via_driver

# su as sxuser to sxother: a private copy of Debian's su service whose auth and account stacks let
# anyone in (only in this namespace; pam_unix's account check fails for users without a shadow
# entry when the caller is not root), with our module and the run-parts hook in its session stack.
SU=$(command -v su || true)
# A module built with ASan (the sanitizer run of check.sh) cannot be loaded into a su that is not:
# the ASan runtime must come first. The plain run of the suite does these checks.
MODULE_ASAN=$( (ldd "$PAM_MODULE" 2>/dev/null | grep libasan) >/dev/null && echo yes || echo no)
if [[ $MODULE_ASAN == yes ]]; then
        log "   b.su: skipped, the PAM module is built with ASan and cannot load into the system's su"
elif [[ -n $SU && -u $SU && $(stat -c %u "$SU") == 0 ]]; then
        su_orig=$(cat "$SCRATCH/pam.d/su")
        {
                echo "# sysext-idmap $TEST_NAME: anyone may su without a password (test namespace only)"
                echo "auth sufficient pam_permit.so"
                echo "account sufficient pam_permit.so"
                printf '%s\n' "$su_orig"
                echo "session required $PAM_MODULE system_dir=$SYSD debug"
                echo "session optional pam_exec.so log=$RPLOG /usr/bin/run-parts --version"
                echo "session optional pam_exec.so $SCRATCH/hook.sh"
        } >"$SCRATCH/pam.d/su"
        via_su() {
                local -a vars=()
                while [[ $1 != -- ]]; do vars+=("$1"); shift; done
                shift
                timeout 120 setpriv --reuid=4242 --regid=4242 --clear-groups -- \
                        env "${vars[@]}" "$SU" sxother -c "$*"
        }
        run via_su -- "$PROBE" sysa
        assert_eq "$LAST_RC:$(val uid)" 0:4343 "b.su: sxuser su's to sxother (no variables)"
        if [[ $LAST_RC != 0 ]]; then
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /' | head -n 10
        fi
        assert_eq "$(val run:sysa)" "hello from sysa" "b.su: the trusted merge works in su's session"
        env_attacks su via_su

        # Root runs the target's files through su too.
        build_variant erofs rpsu "$IMG/rpsu.raw"
        install -o 4343 -g 4343 -m 0644 "$IMG/rpsu.raw" "$ODIR/rpsu.raw"
        : >"$RPLOG"
        run via_su -- "$PROBE" rpsu sysa
        assert_eq "$(val has:rpsu)" no "b.su: sxother's unsigned image in su's session"
        assert_not_ran "b.su" rpsu
        assert_eq "$(rp_versions)" 2 "b.su: the host's run-parts ran at open and at close_session"
        rm -f "$ODIR/rpsu.raw"
else
        log "   b.su: skipped, no setuid-root su"
fi
rm -f "$UDIR"/uself.* "$ODIR"/uself.*

# ---------------------------------------------------------------------------------------------
log "d. checked once, rewritten later: a signed user image is served from a copy"
# usig: signed by the trusted test certificate (in /run/verity.d), with a 16 KiB data file.
src=$(ext_src usig)
mkdir -p "$src/usr/share/usig"
python3 -c 'import sys; sys.stdout.write("sxtest original data\n" * 780)' >"$src/usr/share/usig/data"
chown -R 65534:65534 "$src/usr/share/usig"
ORIG_SUM=$(sha256sum <"$src/usr/share/usig/data" | cut -d' ' -f1)
make_signed_erofs "$IMG/usig.raw" "$src"
install_image 4242 "$IMG/usig.raw" "$UDIR"
service sxsig "system_dir=$SYSD" debug
# data_offset IMAGE: byte offset of usr/share/usig/data's (contiguous, uncompressed) data.
data_offset() {
        python3 - "$1" <<'EOF'
import sys
want = b"sxtest original data\n" * 780
b = open(sys.argv[1], "rb").read()
i = b.find(want)
print(i if i >= 0 else "")
EOF
}
OFF=$(data_offset "$UDIR/usig.raw")
python3 -c 'import sys; sys.stdout.write("sxtest TAMPERED data\n" * 780)' >"$SCRATCH/tampered"
chmod 0644 "$SCRATCH/tampered"

loops0=$(loops_all)
bg_session_start sxsig sxuser "sha256sum /usr/share/usig/data; /usr/bin/usig-hello"
if ((BG_PID > 0)); then
        r=/proc/$BG_PID/root
        if [[ -e $r/usr/lib/extension-release.d/extension-release.usig ]]; then
                pass "d: the signed user image is merged"
        else
                fail "d: the signed user image is not merged"
        fi
        assert_no_loop_on "$UDIR/usig.raw" "d: while the session runs"
        new=$(comm -13 <(printf '%s\n' "$loops0") <(loops_all))
        log "   d: loop devices made for the session: $(printf '%s' "$new" | tr '\n' ';')"
        if grep -q ' /memfd:' <<<"$new"; then
                pass "d: a loop device made for the session is backed by a memfd"
        else
                fail "d: no loop device made for the session is backed by a memfd"
        fi
        if grep -qF "$UDIR" <<<"$new"; then
                fail "d: a loop device made for the session is backed by a file in the home"
        else
                pass "d: no loop device made for the session is backed by a file in the home"
        fi
        assert_overlay_opts "$(mount_opts "/proc/$BG_PID/mountinfo" /usr)" "d: /usr in the session" nodev '!nosuid'
        # The user rewrites the data of the image file under the running session.
        if [[ -z $OFF ]]; then
                fail "d: usr/share/usig/data not found in the image (test setup)"
        else
                as_user 4242 dd if="$SCRATCH/tampered" of="$UDIR/usig.raw" bs=4096 seek="$OFF" \
                        oflag=seek_bytes conv=notrunc status=none
                if [[ $(data_offset "$UDIR/usig.raw") == "" ]]; then
                        pass "d: sxuser overwrote the data of its image file (dd conv=notrunc)"
                else
                        fail "d: sxuser could not overwrite its image file (test setup)"
                fi
        fi
fi
bg_session_stop
assert_eq "$BG_RC" 0 "d: exit status of the session"
assert_eq "$(head -n 1 <<<"$BG_OUT" | cut -d' ' -f1)" "$ORIG_SUM" "d: sha256 of usr/share/usig/data read in the session after the rewrite"
assert_eq "$(tail -n 1 <<<"$BG_OUT")" "hello from usig" "d: usig-hello runs in the session"

log "d2. the next session, from the rewritten file: refused by verity"
probe sxsig sxuser usig sysa
has usig no "d2: rewritten signed image"
has sysa yes "d2"
install_image 4242 "$IMG/usig.raw" "$UDIR"

log "d3. a signed GPT DDI in the home"
EXT_UID=65534 make_ext_ddi_unpriv --sign "$IMG/uddi.raw" uddi "ID=$HOST_ID" "VERSION_ID=$HOST_VERSION_ID"
install -o 4242 -g 4242 -m 0644 "$IMG/uddi.raw" "$UDIR/uddi.raw"
bg_session_start sxsig sxuser
if ((BG_PID > 0)); then
        if [[ -e /proc/$BG_PID/root/usr/lib/extension-release.d/extension-release.uddi ]]; then
                pass "d3: the signed DDI in the home is merged"
        else
                fail "d3: the signed DDI in the home is not merged"
        fi
        assert_no_loop_on "$UDIR/uddi.raw" "d3: while the session runs"
fi
bg_session_stop
rm -f "$UDIR/uddi.raw"

log "d4. copy_limit=1K: the signed user image is left out"
service sxsig-small "system_dir=$SYSD" copy_limit=1K debug
probe sxsig-small sxuser usig sysa
has usig no "d4: copy_limit=1K"
has sysa yes "d4: copy_limit=1K"
rm -f "$UDIR"/usig.*

# ---------------------------------------------------------------------------------------------
log "e. no nodev: a trusted extension ships a 0666 character device (a copy of /dev/null)"
src=$(ext_src sxdev)
chown -R 0:0 "$src"
mkdir -p "$src/usr/share/sxdev"
mknod -m 0666 "$src/usr/share/sxdev/null" c 1 3
mkfs.erofs --quiet "$IMG/sxdev.raw" "$src" >/dev/null
R=$SCRATCH/root
make_root "$R"
printf 'ID=%s\nVERSION_ID=%s\n' "$HOST_ID" "$HOST_VERSION_ID" >"$R/usr/lib/os-release"
cp "$IMG/sxdev.raw" "$R/var/lib/extensions/sxdev.raw"
assert_ok sx --root="$R" --no-reload merge
assert_eq "$(stat -c '%F %t:%T' "$R/usr/share/sxdev/null" 2>&1)" "character special file 1:3" "e.merge: the device node is in the merged /usr"
assert_eq "$(python3 "$DEVOPEN" "$R/usr/share/sxdev/null")" EACCES "e.merge: opening the image's device node for writing"
assert_overlay_opts "$(mount_opts /proc/self/mountinfo "$R/usr")" "e.merge: \$R/usr" nodev
assert_ok sx --root="$R" --no-reload unmerge

assert_ok sx run --image="$IMG/sxdev.raw" -- "$PROBE" sxdev
assert_eq "$(val has:sxdev)" yes "e.run: the image is merged"
assert_eq "$(val dev)" EACCES "e.run: opening the image's device node for writing"
assert_overlay_opts "$(val mnt:/usr)" "e.run: /usr" nodev

# In a session on-disk root is unmapped, and the kernel refuses writes to an inode with an
# unmapped owner whatever the mount; the session's copy is owned by on-disk nobody (the user).
SYSDEV=$PRIV/sysdev
mkdir -m 0755 "$SYSDEV"
mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$IMG/sxdev-nobody.raw" "$src" >/dev/null
install -o 0 -g 0 -m 0644 "$IMG/sxdev-nobody.raw" "$SYSDEV/sxdev.raw"
service sxdev "system_dir=$SYSDEV" user_dir= debug
probe sxdev sxuser sxdev
has sxdev yes "e.pam"
assert_eq "$(val dev)" EACCES "e.pam: opening the trusted image's device node for writing in the session"
assert_overlay_opts "$(val mnt:/usr)" "e.pam: /usr in the session" nodev '!nosuid'

# ---------------------------------------------------------------------------------------------
log "f. a sidecar opened as root: a symlink to a root-only file with the right content"
src=$(ext_src usym)
make_signed_erofs "$IMG/usym.raw" "$src"
# Root-only copies (0600 root:root), and world-readable ones: a symlinked sidecar is never
# followed, whether or not the user could read its target.
SECRET=$PRIV/secret
PUB=$PRIV/pub
mkdir -m 0755 "$SECRET" "$PUB"
for sc in verity roothash; do
        install -o 0 -g 0 -m 0600 "$IMG/usym.$sc" "$SECRET/usym.$sc"
        install -o 0 -g 0 -m 0644 "$IMG/usym.$sc" "$PUB/usym.$sc"
done
for sc in verity roothash; do
        for t in "$SECRET" "$PUB"; do
                what="f.$sc symlinked to ${t/#$PRIV/\$PRIV}"
                install_image 4242 "$IMG/usym.raw" "$UDIR"
                rm -f "$UDIR/usym.$sc"
                ln -s "$t/usym.$sc" "$UDIR/usym.$sc"
                chown -h 4242:4242 "$UDIR/usym.$sc"
                if [[ $t == "$SECRET" ]] && as_user 4242 cat "$UDIR/usym.$sc" >/dev/null 2>&1; then
                        fail "$what: sxuser can read $t/usym.$sc (test setup)"
                fi
                bg_session_start sxtest sxuser
                if ((BG_PID > 0)); then
                        check_session_usr "$what" usym
                        assert_no_loop_on "$t/usym.$sc" "$what: while the session runs"
                        assert_no_loop_on "$UDIR/usym.raw" "$what: while the session runs"
                fi
                bg_session_stop
                rm -f "$UDIR"/usym.*
        done
done
log "f. positive control: the same image with regular sidecars is merged"
install_image 4242 "$IMG/usym.raw" "$UDIR"
probe sxtest sxuser usym sysa
has usym yes "f: regular sidecars"
rm -f "$UDIR"/usym.*

# ---------------------------------------------------------------------------------------------
log "g. a system_dir whose path others can write is untrusted"
# sysimg_in DIR NAME: a root-owned 0644 unsigned system image NAME in DIR.
sysimg_in() {
        local s
        s=$(ext_src "$2")
        mkfs.erofs --quiet --force-uid=65534 --force-gid=65534 "$IMG/$2.raw" "$s" >/dev/null
        install -o 0 -g 0 -m 0644 "$IMG/$2.raw" "$1/$2.raw"
}
# Below /var/tmp (sticky, world-writable): the scratch dir.
mkdir -m 0755 "$SCRATCH/sysvt"
sysimg_in "$SCRATCH/sysvt" svt
mkdir -m 0775 "$PRIV/sys775"
sysimg_in "$PRIV/sys775" s775
mkdir -m 0755 "$PRIV/sysown"
chown 4242:4242 "$PRIV/sysown"
sysimg_in "$PRIV/sysown" sown
mkdir -m 0755 "$PRIV/sysimg"
sysimg_in "$PRIV/sysimg" s664
chmod 0664 "$PRIV/sysimg/s664.raw"
sysimg_in "$PRIV/sysimg" suown
chown 4242:4242 "$PRIV/sysimg/suown.raw"
for c in "sysvt svt $SCRATCH/sysvt (below /var/tmp)" "sys775 s775 a 0775 directory" \
         "sysown sown a directory owned by sxuser" "sysimg s664 a 0664 image" \
         "sysimg suown an image owned by sxuser"; do
        read -r d n what <<<"$c"
        if [[ $d == sysvt ]]; then dir=$SCRATCH/sysvt; else dir=$PRIV/$d; fi
        service "sxsys-$n" "system_dir=$dir" user_dir= debug
        probe "sxsys-$n" sxuser "$n"
        has "$n" no "g: $what"
        assert_no_overlay "$(val mnt:/usr)" "g: $what: /usr in the session"
done
service sxsys-ok "system_dir=$SYSD" user_dir= debug
probe sxsys-ok sxuser sysa
has sysa yes "g: a root-owned 0644 image in a root-owned /run directory"
assert_overlay_opts "$(val mnt:/usr)" "g: trusted system dir: /usr in the session" nodev '!nosuid'

wait_loops_settled
assert_state_unchanged "$SCRATCH/state.before" "at the end"
finish
