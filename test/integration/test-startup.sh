#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Start-up cost and loop devices:
# 1. --version, list and a merge of unprotected images load none of libcryptsetup, libcrypto and
#    libsystemd (they are dlopen()ed when a verb needs them; LD_DEBUG=files shows what ld.so loads);
#    a verity-protected image does load libcryptsetup.
# 2. a missing library is one clear error naming it, and only where it is needed (the library is
#    hidden by a bind mount of /dev/null in a nested mount namespace).
# 3. a bare erofs image is mounted from its file (file-backed erofs, kernel 6.12+): no loop device
#    is backed by it while merged; on a tmpfs (no file-backed erofs there) a loop device is used.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup unshare ldconfig
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
make_ext_erofs "$E/c.raw" c

HAVE_CRYPTSETUP=0
"$SYSEXT_IDMAP" --version | grep -qF -- '+cryptsetup' && HAVE_CRYPTSETUP=1
HAVE_OPENSSL=0
"$SYSEXT_IDMAP" --version | grep -qF -- '+openssl' && HAVE_OPENSSL=1

# loaded ARGS...: the shared objects ld.so loads for the command (one file name a line).
loaded() {
        LD_DEBUG=files "$SYSEXT_IDMAP" "$@" 2>&1 >/dev/null |
                sed -n 's/.*file=\([^ ]*\) \[0\];  *\(needed\|dynamically loaded\) by.*/\1/p' | sort -u
}

assert_not_loaded() {   # assert_not_loaded WHAT ARGS...
        local what=$1 objs lib
        shift
        objs=$(loaded "$@")
        assert_contains "$objs" libblkid.so.1 "$what: ld.so's list (sanity: the linked libblkid)"
        for lib in libcryptsetup.so libcrypto.so libsystemd.so libdevmapper.so; do
                assert_not_contains "$objs" "$lib" "$what: loaded objects"
        done
}

log "1. what each verb loads"
assert_not_loaded "--version" --version
assert_not_loaded "list" --root="$R" list
assert_not_loaded "merge of directory, squashfs, erofs" --root="$R" merge
assert_ok sx --root="$R" unmerge
wait_loops_settled

# A bare erofs with a .verity hash tree and a .roothash sidecar: the userspace check needs
# libcryptsetup, and a .roothash.p7s libcrypto.
V=$SCRATCH/vroot
make_root "$V"
HAVE_VERITY=0
if ((HAVE_CRYPTSETUP)) && command -v veritysetup >/dev/null; then
        make_ext_erofs "$V/var/lib/extensions/v.raw" v
        truncate -s %4096 "$V/var/lib/extensions/v.raw"
        veritysetup format "$V/var/lib/extensions/v.raw" "$V/var/lib/extensions/v.verity" \
                --root-hash-file="$SCRATCH/v.hash" >/dev/null
        { cat "$SCRATCH/v.hash"; echo; } >"$V/var/lib/extensions/v.roothash"
        HAVE_VERITY=1
        objs=$(loaded --root="$V" merge)
        assert_contains "$objs" libcryptsetup.so.12 "merge of a verity-protected image loads libcryptsetup"
        assert_ok sx --root="$V" unmerge
        wait_loops_settled
else
        log "no libcryptsetup in this build or no veritysetup: verity part skipped"
fi

log "2. a library that cannot be loaded"
# hidden SONAME ARGS...: run the binary with SONAME replaced by an empty file (a nested namespace).
hidden() {
        local soname=$1 file
        shift
        file=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|x86_64|64bit/ { print $NF; exit }')
        [[ -n $file ]] || file=$(ldconfig -p | awk -v s="$soname" '$1 == s { print $NF; exit }')
        file=$(readlink -f "$file")
        unshare --mount -- bash -c 'mount --bind /dev/null "$1" && shift && exec "$@"' _ "$file" "$SYSEXT_IDMAP" "$@"
}
if ((HAVE_VERITY)); then
        assert_ok hidden libcryptsetup.so.12 --version
        assert_ok hidden libcryptsetup.so.12 --root="$R" merge
        assert_ok sx --root="$R" unmerge
        snapshot_state "$SCRATCH/state.before"
        assert_fail hidden libcryptsetup.so.12 --root="$V" merge "$V/var/lib/extensions/v.raw"   # named: an error (a discovered one is skipped)
        assert_one_stderr_line "libcryptsetup.so.12"
        assert_contains "$LAST_STDERR" "v.raw" "the message names the image"
        wait_loops_settled
        assert_state_unchanged "$SCRATCH/state.before" "failed merge without libcryptsetup"
        if ((HAVE_OPENSSL)) && command -v openssl >/dev/null; then
                make_test_key
                tr -d '\n' <"$SCRATCH/v.hash" | openssl smime -sign -noattr -binary -signer "$TEST_CERT" \
                        -inkey "$TEST_KEY" -outform DER -out "$V/var/lib/extensions/v.roothash.p7s"
                assert_fail hidden libcrypto.so.3 dissect "$V/var/lib/extensions/v.raw"
                assert_one_stderr_line "libcrypto.so.3"
                assert_ok hidden libcrypto.so.3 dissect "$E/c.raw"
                rm -f "$V/var/lib/extensions/v.roothash.p7s"
        fi
fi

log "3. erofs from its file, without a loop device"
# Whether this kernel mounts erofs from a regular file (fsopen/fsconfig through ctypes: fsopen 430,
# fsconfig 431 on every architecture; the fs context is only created, never mounted anywhere).
file_backed_erofs() {
        python3 - "$1" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fs = libc.syscall(430, b"erofs", 1)
if fs < 0:
    sys.exit(1)
fd = os.open(sys.argv[1], os.O_RDONLY)
src = ("/proc/self/fd/%d" % fd).encode()
ok = libc.syscall(431, fs, 1, b"source", src, 0) == 0 and libc.syscall(431, fs, 6, None, None, 0) == 0
sys.exit(0 if ok else 1)
PY
}
FILE_BACKED=0
file_backed_erofs "$E/c.raw" && FILE_BACKED=1
assert_ok sx --root="$R" merge
[[ -e $R/usr/bin/c-hello ]] && pass "the erofs extension's file is visible" || fail "c-hello missing after merge"
if ((FILE_BACKED)); then
        if loops_of_scratch | grep -q "/c.raw$"; then
                fail "merged erofs image c.raw is backed by a loop device, yet the kernel mounts erofs from files"
        else
                pass "merged erofs image c.raw: no loop device backed by it"
        fi
else
        log "this kernel has no file-backed erofs (6.12+, CONFIG_EROFS_FS_BACKED_BY_FILE): loop devices as before"
        loops_of_scratch | grep -q "/c.raw$" && pass "c.raw falls back to a loop device" || fail "c.raw: no loop device"
fi
if loops_of_scratch | grep -q "/b.raw$"; then
        pass "the squashfs image b.raw still uses a loop device"
else
        fail "no loop device for the squashfs image b.raw"
fi
assert_ok sx --root="$R" unmerge
assert_no_scratch_loops "after unmerge"

# On a tmpfs the kernel cannot read erofs from the file (-ENOTBLK): the loop device is the fallback.
T=$SCRATCH/troot
make_root "$T"
mount -t tmpfs -o mode=0755 tmpfs "$T/var/lib/extensions"
make_ext_erofs "$T/var/lib/extensions/t.raw" t
assert_ok sx --root="$T" merge
[[ -e $T/usr/bin/t-hello ]] && pass "erofs on tmpfs: its file is visible" || fail "t-hello missing after merge"
if ((FILE_BACKED)); then
        # losetup shows the backing file's path as seen from this namespace.
        if losetup --list --noheadings --raw --output NAME,BACK-FILE | grep -q "/t.raw$"; then
                pass "erofs on tmpfs falls back to a loop device"
        else
                fail "erofs on tmpfs: no loop device, yet file-backed erofs should not work there"
        fi
fi
assert_ok sx --root="$T" unmerge
wait_loops_settled
umount "$T/var/lib/extensions"

log "4. a reload loads libsystemd before the merge is attached"
# On the real root (this namespace is private; /run is the test's own tmpfs, so the reload finds
# no service manager and does nothing): the extension asks for a reload, and ld.so must have read
# libsystemd.so.0 from the host's /usr before the extension's /usr is attached over it.
if [[ -e /etc/extensions || -e /var/lib/extensions ]]; then
        for d in /etc/extensions /var/lib/extensions; do
                [[ -d $d ]] && mount -t tmpfs -o mode=0755 tmpfs "$d"
        done
fi
. /etc/os-release
mkdir -p /run/extensions
make_ext_dir /run/extensions/rl rl ID="$ID" ${VERSION_ID:+VERSION_ID="$VERSION_ID"} EXTENSION_RELOAD_MANAGER=1
out=$(LD_DEBUG=files "$SYSEXT_IDMAP" merge 2>&1 >/dev/null)
load=$(grep -n 'file=libsystemd.so.0 \[0\];  *dynamically loaded' <<<"$out" | head -n 1 | cut -d: -f1)
merged=$(grep -n "Merged extensions into '/usr'" <<<"$out" | head -n 1 | cut -d: -f1)
if [[ -n $load && -n $merged ]] && ((load < merged)); then
        pass "libsystemd loaded (line $load) before /usr was merged (line $merged)"
else
        fail "libsystemd load at line '${load:-none}', /usr merged at line '${merged:-none}'"
fi
[[ -e /usr/bin/rl-hello ]] && pass "rl merged into the real /usr of this namespace" || fail "rl-hello missing"
out=$(LD_DEBUG=files "$SYSEXT_IDMAP" unmerge 2>&1 >/dev/null)
load=$(grep -n 'file=libsystemd.so.0 \[0\];  *dynamically loaded' <<<"$out" | head -n 1 | cut -d: -f1)
merged=$(grep -n "Unmerged '/usr'" <<<"$out" | head -n 1 | cut -d: -f1)
if [[ -n $load && -n $merged ]] && ((load < merged)); then
        pass "unmerge: libsystemd loaded before /usr was unmerged"
else
        fail "unmerge: libsystemd load at line '${load:-none}', unmerge at line '${merged:-none}'"
fi
rm -rf /run/extensions/rl

finish
