# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Sourced by every integration test (test/meson.build passes its path as $TEST_LIB).
# Environment from meson: SYSEXT_IDMAP (binary), TEST_LIB, SOURCE_ROOT.
#
# Rules every test keeps: tests that mount call enter_private_ns first, never touch the real /usr,
# and call setup_scratch so that loop devices and files they made go away, also on failure.
# Needing something that is not there means exit 77 with a reason, never a silent pass.

TEST_NAME=$(basename "$0" .sh)
TEST_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SYSEXT_IDMAP:=${SOURCE_ROOT:-.}/build/src/sysext-idmap/sysext-idmap}"
export SYSEXT_IDMAP
# Never let the caller's debug switch change what ends up on stderr.
unset SYSEXT_IDMAP_DEBUG
# The distribution's tools first: a python3 launcher (a pyenv shim) earlier in $PATH runs the
# interpreter as its child, so the $! of a background helper would not be the helper, and killing it
# would leave the helper holding the test's output open.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# DPS partition type GUIDs (x86-64 flavour where it matters) and Linux data.
GPT_ROOT_X86_64=4f68bce3-e8cd-4db1-96e7-fbcaf984b709
GPT_ROOT_X86_64_VERITY=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5
GPT_ROOT_X86_64_VERITY_SIG=41092b05-9fc8-4523-994f-2def0408b176
GPT_USR_X86_64=8484680c-9521-48c6-9c11-b0720656f69e
GPT_USR_X86_64_VERITY=77ff5f63-e7b6-4633-acf4-1565b864c0e6
GPT_USR_X86_64_VERITY_SIG=e7bb33fb-06cf-4e81-8273-e543b413e2e2
GPT_LINUX_GENERIC=0fc63daf-8483-4772-8e79-3d69d8477de4
# The uid/gid base of systemd's "foreign" range.
FOREIGN_UID_BASE=2147352576

# ---------------------------------------------------------------------------------------------
# Results

_n_pass=0
_n_fail=0

log() { printf '%s: %s\n' "$TEST_NAME" "$*"; }
pass() { _n_pass=$((_n_pass + 1)); printf 'PASS: %s\n' "$*"; }
fail() { _n_fail=$((_n_fail + 1)); printf 'FAIL: %s\n' "$*"; }
skip() { printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*"; exit 77; }

finish() {
        printf '%s: %d passed, %d failed\n' "$TEST_NAME" "$_n_pass" "$_n_fail"
        if ((_n_fail > 0)); then
                exit 1
        fi
        if ((_n_pass == 0)); then
                # A test that checked nothing did not pass.
                printf '%s: nothing was checked\n' "$TEST_NAME"
                exit 1
        fi
        exit 0
}

# ---------------------------------------------------------------------------------------------
# Requirements

require_root() {
        [[ $(id -u) -eq 0 ]] || skip "needs root (loop devices, mounts)"
}

require_cmd() {
        local c
        for c in "$@"; do
                command -v "$c" >/dev/null 2>&1 || skip "missing $c"
        done
}

require_binary() {
        [[ -x $SYSEXT_IDMAP ]] || skip "missing sysext-idmap binary at $SYSEXT_IDMAP"
}

# The test hooks (SYSEXT_IDMAP_FAULT, _FAULT_LIST, _FORCE_PATH_LAYERS, _NO_BENEATH, _VERITY_DIRS,
# _RUNTIME_DIR) exist only in a build with -Dtest_hooks=true, which says "+test-hooks" in
# --version; a default build ignores the variables. has_test_hooks: whether the binary has them.
has_test_hooks() {
        "$SYSEXT_IDMAP" --version 2>/dev/null | grep -F -- '+test-hooks' >/dev/null
}
# require_test_hooks: skip the whole test without them (for a test that needs them throughout).
require_test_hooks() {
        has_test_hooks ||
                skip "$SYSEXT_IDMAP has no test hooks (no +test-hooks in --version; build with -Dtest_hooks=true)"
}

# ---------------------------------------------------------------------------------------------
# Namespaces

# The directories a test runs from (sources, build, the binaries under test), physical paths.
_kept_dirs() {
        local p
        for p in "$TEST_LIB_DIR" "${SOURCE_ROOT:-}" "$(dirname -- "$SYSEXT_IDMAP")" \
                 ${PAM_MODULE:+"$(dirname -- "$PAM_MODULE")"} ${PAM_SESSION:+"$(dirname -- "$PAM_SESSION")"}; do
                [[ -n $p ]] && (cd -- "$p" 2>/dev/null && pwd -P)
        done | sort -u
}

# _mount_tmpfs_keeping DIR MODE KEPT-DIR...: a fresh tmpfs on DIR, with the KEPT-DIRs that live
# below DIR bound back in place: a clone in /tmp must not lose its binaries to the test's own /tmp.
_mount_tmpfs_keeping() {
        local dir=$1 mode=$2 fd p rel last=
        shift 2
        exec {fd}<"$dir"
        mount -t tmpfs -o "mode=$mode" tmpfs "$dir"
        for p in "$@"; do
                [[ $p == "$dir"/* ]] || continue
                [[ -n $last && $p == "$last"/* ]] && continue
                rel=${p#"$dir"/}
                mkdir -p -- "$p"
                # -c: the source goes through the old DIR's fd; canonicalizing it would resolve to
                # the new tmpfs.
                mount -c --bind "/proc/$$/fd/$fd/$rel" "$p" || { echo "cannot keep $p visible" >&2; exit 1; }
                last=$p
        done
        exec {fd}<&-
}

# Re-execute the calling script once in a private mount namespace, then give it its own /run and
# /tmp so that nothing we mount, nor the lock file in /run/sysext-idmap, is seen by the host.
# Usage, at the top of a test: enter_private_ns "$@"
enter_private_ns() {
        if [[ ${SYSEXT_IDMAP_TEST_IN_NS:-} != 1 ]]; then
                require_root
                require_cmd unshare
                export SYSEXT_IDMAP_TEST_IN_NS=1
                exec unshare --mount --propagation private -- bash "$0" "$@"
        fi
        # Inside: make sure we really are not sharing mounts with the host.
        mount --make-rprivate / || { echo "cannot make / private" >&2; exit 1; }
        local -a keep
        mapfile -t keep < <(_kept_dirs)
        _mount_tmpfs_keeping /run 0755 "${keep[@]}"
        _mount_tmpfs_keeping /tmp 1777 "${keep[@]}"
        log "running in a private mount namespace (pid $$)"
}

# systemd-sysext 252 only sees --root= merges when / is shared inside the namespace (VM-NOTES §5).
# Only call this from within enter_private_ns: the namespace is still private towards the host.
make_ns_shared_for_systemd_sysext() {
        [[ ${SYSEXT_IDMAP_TEST_IN_NS:-} == 1 ]] || { echo "not in a private namespace" >&2; exit 1; }
        mount --make-rshared /
}

# ---------------------------------------------------------------------------------------------
# Scratch directory and cleanup

SCRATCH=

_cleanup() {
        local rc=$? m dev file
        trap - EXIT
        if [[ -n $SCRATCH && -d $SCRATCH ]]; then
                # Unmount whatever is still mounted below the scratch dir, deepest first.
                while read -r m; do
                        umount -l "$m" 2>/dev/null || true
                done < <(awk -v s="$SCRATCH" '$5 == s || index($5, s "/") == 1 { print $5 }' \
                                 /proc/self/mountinfo | sort -r)
                # Detach only loop devices whose backing file lives below the scratch dir
                # (what `losetup -j FILE` would report for each of our files).
                while read -r dev file; do
                        case $file in
                                "$SCRATCH"/*) losetup -d "$dev" 2>/dev/null || true ;;
                        esac
                done < <(losetup --list --noheadings --raw --output NAME,BACK-FILE 2>/dev/null)
                rm -rf --one-file-system "$SCRATCH"
        fi
        exit "$rc"
}

setup_scratch() {
        SCRATCH=$(mktemp -d "/var/tmp/sysext-idmap-$TEST_NAME.XXXXXX")
        trap _cleanup EXIT
        trap 'exit 130' INT TERM
        export SCRATCH
}

# ---------------------------------------------------------------------------------------------
# State snapshots: a failing command must leave mounts and loop devices exactly as they were.

# Mount table without the mount/parent ids (they are allocated, not meaningful), and the loop
# devices backed by our scratch files (other tests on the machine may use loop devices too).
_state() {
        awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo
        echo "--- loop devices"
        losetup --list --noheadings --raw --output NAME,BACK-FILE,OFFSET,SIZELIMIT,RO 2>/dev/null |
                awk -v s="${SCRATCH:-/nonexistent}" 'index($2, s "/") == 1' | sort
}

snapshot_state() {
        _state >"$1"
}

assert_state_unchanged() {
        local snap=$1 what=${2:-state} now
        now=$(mktemp "${SCRATCH:-/tmp}/state.XXXXXX")
        _state >"$now"
        if diff -u "$snap" "$now" >"$now.diff"; then
                pass "$what: mounts and loop devices unchanged"
        else
                fail "$what: mounts or loop devices changed:"
                sed 's/^/    /' "$now.diff"
        fi
        rm -f "$now" "$now.diff"
}

# ---------------------------------------------------------------------------------------------
# Assertions

assert_eq() {
        local got=$1 want=$2 what=${3:-value}
        if [[ $got == "$want" ]]; then
                pass "$what = '$want'"
        else
                fail "$what: got '$got', want '$want'"
        fi
}

assert_contains() {
        local haystack=$1 needle=$2 what=${3:-output}
        if [[ $haystack == *"$needle"* ]]; then
                pass "$what contains '$needle'"
        else
                fail "$what does not contain '$needle'; it is:"
                printf '%s\n' "$haystack" | sed 's/^/    /' | head -n 40
        fi
}

assert_not_contains() {
        local haystack=$1 needle=$2 what=${3:-output}
        if [[ $haystack != *"$needle"* ]]; then
                pass "$what does not contain '$needle'"
        else
                fail "$what contains '$needle'"
        fi
}

# assert_fail CMD...: the command must exit non-zero. Its stderr is kept in $LAST_STDERR and
# its stdout in $LAST_STDOUT, its exit code in $LAST_RC.
LAST_STDOUT=
LAST_STDERR=
LAST_RC=0
run() {
        local out err
        out=$(mktemp "${SCRATCH:-/tmp}/out.XXXXXX")
        err=$(mktemp "${SCRATCH:-/tmp}/err.XXXXXX")
        LAST_RC=0
        "$@" >"$out" 2>"$err" || LAST_RC=$?
        LAST_STDOUT=$(cat "$out")
        LAST_STDERR=$(cat "$err")
        rm -f "$out" "$err"
}

# The command line for messages, with the long paths shortened.
_show() {
        local s="$*"
        s=${s//"$SYSEXT_IDMAP"/sysext-idmap}
        [[ -n $SCRATCH ]] && s=${s//"$SCRATCH"/\$SCRATCH}
        printf '%s' "$s"
}

assert_ok() {
        run "$@"
        if ((LAST_RC == 0)); then
                pass "succeeds: $(_show "$@")"
        else
                fail "exit $LAST_RC: $(_show "$@")"
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    stderr: /' | head -n 20
        fi
}

assert_fail() {
        run "$@"
        if ((LAST_RC != 0)); then
                pass "fails (exit $LAST_RC): $(_show "$@")"
        else
                fail "unexpectedly succeeded: $(_show "$@")"
        fi
}

# The last command's stderr is exactly one non-empty line (optionally containing $1).
assert_one_stderr_line() {
        local needle=${1:-} n
        n=$(printf '%s' "$LAST_STDERR" | grep -c '' || true)
        if [[ $n -eq 1 && -n $LAST_STDERR ]]; then
                pass "one line on stderr: $LAST_STDERR"
        else
                fail "want one line on stderr, got $n:"
                printf '%s\n' "$LAST_STDERR" | sed 's/^/    /' | head -n 20
        fi
        if [[ -n $needle ]]; then
                assert_contains "$LAST_STDERR" "$needle" "stderr"
        fi
}

# json_get JSON PYEXPR: evaluate a python expression on the parsed document `j`, print the result
# (strings bare, everything else as JSON). Fails (exit 2) if the input is not valid JSON.
json_get() {
        python3 -c '
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError as e:
    print("invalid JSON: %s" % e, file=sys.stderr); sys.exit(2)
try:
    v = eval(sys.argv[2])
except Exception as e:
    print("<%s: %s>" % (type(e).__name__, e)); sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}

assert_json_valid() {
        if python3 -c 'import json,sys; json.loads(sys.argv[1])' "$1" 2>/dev/null; then
                pass "${2:-output} is valid JSON"
        else
                fail "${2:-output} is not valid JSON:"
                printf '%s\n' "$1" | head -n 20 | sed 's/^/    /'
        fi
}

# ---------------------------------------------------------------------------------------------
# Roots and extension trees

# make_root DIR: a minimal host root for --root=.
# add_test_user NAME UID GID HOME SHELL: a user that exists only in this private mount namespace:
# /etc/passwd and /etc/group become bind-mounted copies in the scratch dir (the machine's files are
# never written). A name the machine already has is left as it is (tests check the ids they need).
_test_users_ready=0
add_test_user() {
        if ((!_test_users_ready)); then
                cp /etc/passwd "$SCRATCH/passwd"
                cp /etc/group "$SCRATCH/group"
                mount --bind "$SCRATCH/passwd" /etc/passwd
                mount --bind "$SCRATCH/group" /etc/group
                _test_users_ready=1
        fi
        getent passwd "$1" >/dev/null && return 0
        echo "$1:x:$2:$3:sysext-idmap test:$4:$5" >>"$SCRATCH/passwd"
        getent group "$3" >/dev/null || echo "$1:x:$3:" >>"$SCRATCH/group"
}

make_root() {
        local r=$1
        mkdir -p "$r"/usr/lib "$r"/usr/bin "$r"/opt "$r"/etc "$r"/var/lib/extensions \
                 "$r"/run/extensions "$r"/etc/extensions
        printf 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Test root"\n' >"$r"/usr/lib/os-release
        ln -sf ../usr/lib/os-release "$r"/etc/os-release
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r"/etc/passwd
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$r"/etc/group
        printf '#!/bin/sh\necho base-os\n' >"$r"/usr/bin/base-marker
        chmod 0755 "$r"/usr/bin/base-marker
        mkdir -p "$r"/opt/base && echo base >"$r"/opt/base/data
}

# make_ext_tree DIR NAME [extension-release lines...]
# Default extension-release: ID=debian VERSION_ID=12.
make_ext_tree() {
        local d=$1 name=$2
        shift 2
        (($# > 0)) || set -- ID=debian VERSION_ID=12
        mkdir -p "$d"/usr/lib/extension-release.d "$d"/usr/bin "$d/opt/$name"
        printf '%s\n' "$@" >"$d/usr/lib/extension-release.d/extension-release.$name"
        printf '#!/bin/sh\necho "hello from %s"\n' "$name" >"$d/usr/bin/$name-hello"
        chmod 0755 "$d/usr/bin/$name-hello"
        echo "$name data" >"$d/opt/$name/data"
}

# Ownership of the files inside images built by the make_ext_* helpers: set EXT_UID / EXT_GID
# (e.g. 1000, 65534 or $FOREIGN_UID_BASE) to build an "unprivileged" image. Default: root.
_ext_owner() {
        echo "${EXT_UID:-0}:${EXT_GID:-${EXT_UID:-0}}"
}

chown_tree() {          # chown_tree DIR UID [GID]
        chown -R --no-dereference "$2:${3:-$2}" "$1"
}
chown_tree_foreign() {  # files owned by the foreign range: on-disk id = base + id
        local d=$1 f u g
        while IFS= read -r -d '' f; do
                u=$(stat -c %u "$f"); g=$(stat -c %g "$f")
                chown -h "$((FOREIGN_UID_BASE + u)):$((FOREIGN_UID_BASE + g))" "$f"
        done < <(find "$d" -print0)
}

_ext_src() {            # fresh source tree for an image, printed path
        local src
        src=$(mktemp -d "${SCRATCH:?call setup_scratch first}/src.XXXXXX")
        chmod 0755 "$src"
        make_ext_tree "$src" "$@"
        chown_tree "$src" "${EXT_UID:-0}" "${EXT_GID:-${EXT_UID:-0}}"
        echo "$src"
}

# make_ext_dir DEST NAME [lines...]: a directory extension at DEST.
make_ext_dir() {
        local dest=$1
        shift
        make_ext_tree "$dest" "$@"
        chown_tree "$dest" "${EXT_UID:-0}" "${EXT_GID:-${EXT_UID:-0}}"
}

# make_ext_squashfs OUT NAME [lines...]
make_ext_squashfs() {
        require_cmd mksquashfs
        local out=$1 src
        shift
        src=$(_ext_src "$@")
        rm -f "$out"
        mksquashfs "$src" "$out" -noappend -quiet -no-progress \
                -force-uid "${EXT_UID:-0}" -force-gid "${EXT_GID:-${EXT_UID:-0}}" >/dev/null
}

# make_ext_erofs OUT NAME [lines...]
make_ext_erofs() {
        require_cmd mkfs.erofs
        local out=$1 src
        shift
        src=$(_ext_src "$@")
        rm -f "$out"
        mkfs.erofs --quiet --force-uid="${EXT_UID:-0}" --force-gid="${EXT_GID:-${EXT_UID:-0}}" \
                "$out" "$src" >/dev/null
}

# make_ext_ext4 OUT NAME [lines...]: ext4 keeps the source tree's ownership (mkfs.ext4 -d).
make_ext_ext4() {
        require_cmd mkfs.ext4
        local out=$1 src
        shift
        src=$(_ext_src "$@")
        rm -f "$out"
        truncate -s 16M "$out"
        mkfs.ext4 -q -F -d "$src" -L "$1" "$out" >/dev/null
}

# A throwaway signing key and certificate, made once per scratch dir.
make_test_key() {
        require_cmd openssl
        TEST_KEY=$SCRATCH/keys/key.pem
        TEST_CERT=$SCRATCH/keys/cert.pem
        [[ -f $TEST_CERT ]] && return 0
        mkdir -p "$SCRATCH/keys"
        openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$TEST_KEY" -out "$TEST_CERT" \
                -days 365 -subj /CN=sysext-idmap-test 2>/dev/null
}

# make_ext_ddi [--sign] OUT NAME [lines...]
# A GPT DDI built by systemd-repart 252 (needs root: it uses loop devices): usr partition with
# squashfs, usr-verity and, with --sign, usr-verity-sig. Sets DDI_ROOTHASH and DDI_JSON (repart's
# JSON output, kept outside any extension directory).
make_ext_ddi() {
        require_root
        require_cmd systemd-repart mksquashfs
        local sign=0 out src defs
        if [[ $1 == --sign ]]; then sign=1; shift; fi
        out=$1
        shift
        src=$(_ext_src "$@")
        defs=$(mktemp -d "$SCRATCH/defs.XXXXXX")
        printf '[Partition]\nType=usr\nFormat=squashfs\nCopyFiles=%s/usr:/\nVerity=data\nVerityMatchKey=usr\n' \
                "$src" >"$defs/10-usr.conf"
        printf '[Partition]\nType=usr-verity\nVerity=hash\nVerityMatchKey=usr\n' >"$defs/20-usr-verity.conf"
        local -a keyargs=()
        if ((sign)); then
                make_test_key
                printf '[Partition]\nType=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n' \
                        >"$defs/30-usr-verity-sig.conf"
                keyargs=(--private-key="$TEST_KEY" --certificate="$TEST_CERT")
        fi
        rm -f "$out"
        DDI_JSON=$defs/repart.json
        # repart wants to see its loop partitions; keep that inside a namespace of its own.
        if ! unshare --mount --propagation private systemd-repart --empty=create --size=auto \
                        --dry-run=no --definitions="$defs" "${keyargs[@]}" --json=short "$out" \
                        >"$DDI_JSON" 2>"$defs/repart.log"; then
                cat "$defs/repart.log" >&2
                echo "systemd-repart failed for $out" >&2
                return 1
        fi
        DDI_ROOTHASH=$(python3 -c '
import json, sys
for p in json.load(open(sys.argv[1])):
    if p.get("roothash"):
        print(p["roothash"])' "$DDI_JSON")
        [[ -n $DDI_ROOTHASH ]]
}

# make_ext_ddi_unpriv [--sign] OUT NAME [lines...]
# The same layout without root: erofs usr partition, `veritysetup format` on plain files, sfdisk
# with the DPS type GUIDs and partition UUIDs derived from the root hash (first/last 128 bits),
# and the signature JSON made with openssl (what repart 252 writes). Sets DDI_ROOTHASH.
make_ext_ddi_unpriv() {
        require_cmd mkfs.erofs veritysetup sfdisk openssl python3
        local sign=0 out work
        if [[ $1 == --sign ]]; then sign=1; shift; fi
        out=$1
        shift
        work=$(mktemp -d "$SCRATCH/ddi.XXXXXX")
        local src
        src=$(_ext_src "$@")
        mkfs.erofs --quiet --force-uid="${EXT_UID:-0}" --force-gid="${EXT_GID:-${EXT_UID:-0}}" \
                "$work/usr.img" "$src/usr" >/dev/null
        # Pad the data to whole 4 KiB blocks so that verity covers all of it.
        truncate -s "%4096" "$work/usr.img"
        DDI_ROOTHASH=$(veritysetup format "$work/usr.img" "$work/verity.img" |
                awk -F'[ \t]+' '/^Root hash:/ { print $3 }')
        [[ ${#DDI_ROOTHASH} -eq 64 ]] || { echo "veritysetup format gave no root hash" >&2; return 1; }
        truncate -s "%4096" "$work/verity.img"
        local uuid_data uuid_hash
        uuid_data=$(_hash_to_uuid "${DDI_ROOTHASH:0:32}")
        uuid_hash=$(_hash_to_uuid "${DDI_ROOTHASH:32:32}")

        local n_sig=0
        if ((sign)); then
                make_test_key
                local sig fpr
                sig=$(printf '%s' "$DDI_ROOTHASH" |
                        openssl smime -sign -noattr -binary -signer "$TEST_CERT" -inkey "$TEST_KEY" \
                                -outform der | base64 -w0)
                fpr=$(openssl x509 -in "$TEST_CERT" -outform der | sha256sum | cut -d' ' -f1)
                printf '{"rootHash":"%s","certificateFingerprint":"%s","signature":"%s"}\n' \
                        "$DDI_ROOTHASH" "$fpr" "$sig" >"$work/sig.img"
                truncate -s 16K "$work/sig.img"
                n_sig=32
        fi

        # Layout in 512-byte sectors: 1 MiB alignment, partitions back to back.
        local s_data s_hash n_data n_hash s_sig end
        n_data=$(($(stat -c %s "$work/usr.img") / 512))
        n_hash=$(($(stat -c %s "$work/verity.img") / 512))
        s_data=2048
        s_hash=$(( (s_data + n_data + 2047) / 2048 * 2048 ))
        s_sig=$(( (s_hash + n_hash + 2047) / 2048 * 2048 ))
        end=$(( s_sig + n_sig + 2048 ))
        rm -f "$out"
        truncate -s $((end * 512)) "$out"
        {
                echo "label: gpt"
                echo "start=$s_data, size=$n_data, type=$GPT_USR_X86_64, uuid=$uuid_data, name=usr-x86-64, attrs=\"GUID:60\""
                echo "start=$s_hash, size=$n_hash, type=$GPT_USR_X86_64_VERITY, uuid=$uuid_hash, name=usr-x86-64-verity, attrs=\"GUID:60\""
                if ((sign)); then
                        echo "start=$s_sig, size=$n_sig, type=$GPT_USR_X86_64_VERITY_SIG, name=usr-x86-64-verity-sig, attrs=\"GUID:60\""
                fi
        } | sfdisk --quiet --no-reread --no-tell-kernel "$out" >/dev/null
        dd if="$work/usr.img" of="$out" bs=512 seek="$s_data" conv=notrunc status=none
        dd if="$work/verity.img" of="$out" bs=512 seek="$s_hash" conv=notrunc status=none
        if ((sign)); then
                dd if="$work/sig.img" of="$out" bs=512 seek="$s_sig" conv=notrunc status=none
        fi
}

_hash_to_uuid() {       # 32 hex digits -> 8-4-4-4-12
        local h=$1
        echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}

# gpt_tool ARGS...: low-level GPT editing for broken-input tests (see gpt-tool.py).
gpt_tool() {
        python3 "$TEST_LIB_DIR/gpt-tool.py" "$@"
}

# loops_on FILE: how many loop devices FILE backs. wait_no_loops_on FILE WHAT: none, allowing for
# autoclear loop devices going asynchronously once the last mount is gone (10 s).
loops_on() {
        losetup -j "$1" 2>/dev/null | grep -c . || true
}
wait_no_loops_on() {
        local i
        for i in $(seq 1 100); do
                (($(loops_on "$1") == 0)) && break
                sleep 0.1
        done
        assert_eq "$(loops_on "$1")" 0 "$2: no loop device left on ${1##*/}"
}
