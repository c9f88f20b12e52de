#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Trust: where root hashes and signatures come from, which certificates are trusted (verity.d),
# userspace verity checking, tampered images, --verity= and --image-policy= for merge and dissect,
# and dissect --validate without privileges.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
# SYSEXT_IDMAP_VERITY_DIRS switches the trusted certificates throughout.
require_test_hooks
require_cmd systemd-repart veritysetup openssl
require_cmd python3 mksquashfs mkfs.erofs sfdisk losetup setpriv base64 sha256sum
setup_merge_scratch

R=$SCRATCH/root
make_root "$R"
IMG=$SCRATCH/img
mkdir -p "$IMG"

# Trusted certificate directories: VD holds the test certificate, EMPTY holds nothing.
VD=$SCRATCH/verity.d
EMPTY=$SCRATCH/verity.empty
mkdir -p "$VD" "$EMPTY"
export SYSEXT_IDMAP_VERITY_DIRS=$VD

STRICT_SIGNED='usr=signed+absent:root=absent'
STRICT_VERITY='root=verity+signed+absent:usr=verity+signed+absent'

# ---------------------------------------------------------------------------------------------
# Helpers

# The extension must not be merged any more and no loop device may be backed by FILE.
assert_no_loop_for() {
        local f=$1 what=$2 i left
        for i in $(seq 1 50); do
                left=$(losetup -j "$f" 2>/dev/null)
                [[ -z $left ]] && break
                sleep 0.1
        done
        if [[ -z $left ]]; then
                pass "$what: no loop device for ${f/#$SCRATCH/\$SCRATCH}"
        else
                fail "$what: loop devices left for ${f/#$SCRATCH/\$SCRATCH}: $left"
        fi
}

# refused WHAT FILE CMD...: CMD exits 1 with exactly one stderr line naming FILE (if not empty),
# and leaves mounts and loop devices as they were, with no loop device on FILE.
refused() {
        local what=$1 file=$2
        shift 2
        wait_loops_settled
        snapshot_state "$SCRATCH/state.refused"
        assert_fail "$@"
        assert_eq "$LAST_RC" 1 "$what: exit code"
        assert_one_stderr_line "$file"
        wait_loops_settled
        assert_state_unchanged "$SCRATCH/state.refused" "$what"
        if [[ -n $file ]]; then
                assert_no_loop_for "$file" "$what"
        fi
}

# merge_ok WHAT FILE NAME [OPTIONS...]: merge FILE with OPTIONS, run NAME-hello from the merge.
merge_ok() {
        local what=$1 file=$2 name=$3
        shift 3
        assert_ok sx --root="$R" --no-reload "$@" merge "$file"
        if ((LAST_RC == 0)); then
                assert_eq "$("$R/usr/bin/$name-hello" 2>&1)" "hello from $name" "$what: $name-hello from the merge"
        fi
}

unmerge_ok() {
        assert_ok sx --root="$R" unmerge
        assert_no_scratch_loops "${1:-after unmerge}"
}

# Unmerge quietly if something is (wrongly) still merged, so later cases start clean.
unmerge_if_merged() {
        if [[ $(merged_exts "$R" /usr) != - || $(merged_exts "$R" /opt) != - ]]; then
                sx --root="$R" unmerge >/dev/null 2>&1 || true
                wait_loops_settled
        fi
}

# dissect_json [OPTIONS...] FILE -> $D
dissect_json() {
        assert_ok sx --json=short "$@"
        D=$LAST_STDOUT
        assert_json_valid "$D" "dissect --json ${*: -1}"
}
dv() {                  # dv DESIGNATOR KEY: verity.DESIGNATOR.KEY of $D
        json_get "$D" "j['verity']['$1'].get('$2', '<no key $2>')"
}

# status_layer KEY: KEY of the single layer of the /usr merge.
status_layer() {
        local j
        j=$(status_json "$R") || { echo "<status failed>"; return 0; }
        json_get "$j" "[l.get('$1', '<no key $1>') for h in j if h['hierarchy'] == '/usr' for l in h['layers']]"
}

# flip FILE OFFSET: xor one byte with 0x01.
flip() {
        python3 - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x01]))
EOF
}

# part_offset FILE INDEX: byte offset of partition INDEX (0-based) from sfdisk -J.
part_offset() {
        sfdisk -J "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print(t["partitions"][int(sys.argv[1])]["start"] * t.get("sectorsize", 512))' "$2"
}

fingerprint() {
        openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------------------------------------
log "building images"
# Signed by the trusted test certificate.
make_ext_ddi --sign "$IMG/signed.raw" signed
ROOTHASH_SIGNED=$DDI_ROOTHASH
cp "$TEST_CERT" "$VD/test.crt"
FP=$(fingerprint "$TEST_CERT")
# Signed by another certificate: move the test key aside so make_ext_ddi makes a fresh one.
mv "$SCRATCH/keys" "$SCRATCH/keys.trusted"
make_ext_ddi --sign "$IMG/other.raw" other
OTHER_CERT=$SCRATCH/keys.other/cert.pem
mv "$SCRATCH/keys" "$SCRATCH/keys.other"
mv "$SCRATCH/keys.trusted" "$SCRATCH/keys"
make_test_key
OTHER_FP=$(fingerprint "$OTHER_CERT")
[[ $OTHER_FP != "$FP" ]] || { fail "the other certificate equals the test certificate"; finish; }
# Unsigned verity: repart without a signature, and the rootless layout without one.
make_ext_ddi "$IMG/unsigned.raw" unsigned
ROOTHASH_UNSIGNED=$DDI_ROOTHASH
make_ext_ddi_unpriv "$IMG/unsignedu.raw" unsignedu
ROOTHASH_UNSIGNEDU=$DDI_ROOTHASH
# No verity at all.
make_ext_squashfs "$IMG/plainsq.raw" plainsq
make_ext_erofs "$IMG/plainero.raw" plainero
make_ext_dir "$IMG/plaindir" plaindir
# Bare erofs with a .verity hash tree and a .roothash sidecar.
mkdir -p "$IMG/bare"
make_ext_erofs "$IMG/bare/bare.raw" bare
truncate -s %4096 "$IMG/bare/bare.raw"
veritysetup format "$IMG/bare/bare.raw" "$IMG/bare/bare.verity" \
        --root-hash-file="$SCRATCH/bare.hash" >/dev/null
ROOTHASH_BARE=$(cat "$SCRATCH/bare.hash")
{ cat "$SCRATCH/bare.hash"; echo; } >"$IMG/bare/bare.roothash"
wait_loops_settled

# ---------------------------------------------------------------------------------------------
log "1. signed DDI, certificate trusted: dissect, merge, status, unmerge"
assert_ok sx dissect "$IMG/signed.raw"
T=$LAST_STDOUT
assert_contains "$T" "usr: signed" "dissect text"
assert_contains "$T" "checked by userspace" "dissect text"
assert_contains "$T" "$ROOTHASH_SIGNED" "dissect text"
assert_contains "$T" "Policy: allowed" "dissect text"
dissect_json dissect "$IMG/signed.raw"
assert_eq "$(dv usr protection)" signed "dissect --json verity.usr.protection"
assert_eq "$(dv usr signed)" true "dissect --json verity.usr.signed"
assert_eq "$(dv usr checkedBy)" userspace "dissect --json verity.usr.checkedBy"
assert_eq "$(dv usr rootHash)" "$ROOTHASH_SIGNED" "dissect --json verity.usr.rootHash"
assert_eq "$(dv usr rootHashSource)" "signature partition" "dissect --json verity.usr.rootHashSource"
assert_eq "$(dv usr signerFingerprint)" "$FP" "dissect --json verity.usr.signerFingerprint"
assert_eq "$(dv usr signerSubject)" "CN=sysext-idmap-test" "dissect --json verity.usr.signerSubject"
assert_eq "$(json_get "$D" 'j["policyAllowed"]')" true "dissect --json policyAllowed"
assert_eq "$(json_get "$D" 'j["policyRefusal"]')" null "dissect --json policyRefusal"
merge_ok "signed" "$IMG/signed.raw" signed
assert_eq "$(status_layer verity)" '["signed"]' "status layer verity"
assert_eq "$(status_layer checkedBy)" '["userspace"]' "status layer checkedBy"
assert_eq "$(status_layer rootHash)" "[\"$ROOTHASH_SIGNED\"]" "status layer rootHash"
assert_eq "$(status_layer signer)" "[\"$FP\"]" "status layer signer (sha256 of the DER certificate)"
unmerge_ok "signed, after unmerge"
log "1b. list --json shows the trust of a discovered signed image"
cp "$IMG/signed.raw" "$R/var/lib/extensions/signed.raw"
assert_ok sx --root="$R" --json=short list
L=$LAST_STDOUT
assert_eq "$(json_get "$L" "[(i['verity'], i['checkedBy'], i['signer']) for i in j if i['name'] == 'signed']")" \
        "[[\"signed\", \"userspace\", \"$FP\"]]" "list --json verity, checkedBy, signer"
rm -f "$R/var/lib/extensions/signed.raw"
assert_no_scratch_loops "after list"

# ---------------------------------------------------------------------------------------------
log "2. same image, no trusted certificate: verity, not signed"
export SYSEXT_IDMAP_VERITY_DIRS=$EMPTY
dissect_json dissect "$IMG/signed.raw"
assert_eq "$(dv usr protection)" verity "dissect --json verity.usr.protection"
assert_eq "$(dv usr signed)" false "dissect --json verity.usr.signed"
assert_eq "$(dv usr checkedBy)" userspace "dissect --json verity.usr.checkedBy"
merge_ok "untrusted signature, default policy" "$IMG/signed.raw" signed
assert_eq "$(status_layer verity)" '["verity"]' "status layer verity"
assert_eq "$(status_layer signer)" '[null]' "status layer signer"
unmerge_ok
refused "signed-only policy, no trusted certificate" "$IMG/signed.raw" \
        sx --root="$R" --no-reload --image-policy="$STRICT_SIGNED" merge "$IMG/signed.raw"
assert_contains "$LAST_STDERR" "refused by the image policy" "stderr"
unmerge_if_merged
export SYSEXT_IDMAP_VERITY_DIRS=$VD

# ---------------------------------------------------------------------------------------------
log "3. signed by an untrusted certificate"
dissect_json dissect "$IMG/other.raw"
assert_eq "$(dv usr protection)" verity "dissect --json verity.usr.protection"
assert_eq "$(dv usr signed)" false "dissect --json verity.usr.signed"
refused "untrusted signer, signed-only policy" "$IMG/other.raw" \
        sx --root="$R" --no-reload --image-policy="$STRICT_SIGNED" merge "$IMG/other.raw"
assert_contains "$LAST_STDERR" "refused by the image policy" "stderr"
unmerge_if_merged
merge_ok "untrusted signer, default policy" "$IMG/other.raw" other
assert_eq "$(status_layer verity)" '["verity"]' "status layer verity"
unmerge_ok
log "3b. trusting the other certificate makes it signed"
mkdir -p "$SCRATCH/verity.other"
cp "$OTHER_CERT" "$SCRATCH/verity.other/other.crt"
SYSEXT_IDMAP_VERITY_DIRS=$EMPTY:$SCRATCH/verity.other dissect_json dissect "$IMG/other.raw"
assert_eq "$(dv usr protection)" signed "dissect --json verity.usr.protection (second verity dir)"
assert_eq "$(dv usr signerFingerprint)" "$OTHER_FP" "dissect --json verity.usr.signerFingerprint"

# ---------------------------------------------------------------------------------------------
log "4. tampered copies of the signed DDI"
DATA_OFF=$(part_offset "$IMG/signed.raw" 0)
HASH_OFF=$(part_offset "$IMG/signed.raw" 1)
SIG_OFF=$(part_offset "$IMG/signed.raw" 2)
# A byte in the middle of the squashfs (bytes_used is at offset 40 of the superblock, 96 bytes).
SQ_USED=$(python3 -c '
import struct, sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]) + 40)
    print(struct.unpack("<Q", f.read(8))[0])' "$IMG/signed.raw" "$DATA_OFF")
DATA_FLIP=$((DATA_OFF + 96 + (SQ_USED - 96) / 2))
# The signature JSON: offsets of one hex digit of rootHash and one character inside the base64.
read -r RH_FLIP B64_FLIP < <(python3 -c '
import sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]))
    blob = f.read(16384)
s = blob.split(b"\0")[0].decode()
i = s.index("\"rootHash\"")
i = s.index("\"", i + len("\"rootHash\"") + 1) + 1
j = s.index("\"signature\"")
j = s.index("\"", j + len("\"signature\"") + 1) + 1
k = s.index("\"", j)
print(int(sys.argv[2]) + i + 10, int(sys.argv[2]) + k - 40)' "$IMG/signed.raw" "$SIG_OFF")
# Replace the character at OFFSET by another one of the same alphabet (hex or base64).
subst_char() {
        python3 - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    c = f.read(1)
    n = b"1" if c != b"1" else b"2"
    f.seek(off)
    f.write(n)
EOF
}
for t in data hash roothash signature; do
        mkdir -p "$IMG/tamper-$t"
        cp "$IMG/signed.raw" "$IMG/tamper-$t/signed.raw"
done
flip "$IMG/tamper-data/signed.raw" "$DATA_FLIP"
flip "$IMG/tamper-hash/signed.raw" $((HASH_OFF + 4096 + 7))
subst_char "$IMG/tamper-roothash/signed.raw" "$RH_FLIP"
subst_char "$IMG/tamper-signature/signed.raw" "$B64_FLIP"
for t in data hash roothash signature; do
        f=$IMG/tamper-$t/signed.raw
        cmp -s "$f" "$IMG/signed.raw" && fail "tampered copy ($t) equals the original"
        refused "tampered $t" "$f" sx --root="$R" --no-reload merge "$f"
        unmerge_if_merged
done
# Tampering with the data must not stop at the default policy either: also with no trust at all.
SYSEXT_IDMAP_VERITY_DIRS=$EMPTY refused "tampered data, untrusted certificate" "$IMG/tamper-data/signed.raw" \
        sx --root="$R" --no-reload merge "$IMG/tamper-data/signed.raw"
unmerge_if_merged

# ---------------------------------------------------------------------------------------------
log "5. unsigned verity"
# Without a signature partition the root hash must come from somewhere else: with no source at all
# the hash tree cannot be checked, so the image is unprotected (never "verity"), and a policy asking
# for signed refuses it.
dissect_json dissect "$IMG/unsigned.raw"
assert_eq "$(dv usr protection)" unprotected "unsigned, no root hash source: dissect --json verity.usr.protection"
refused "unsigned, no root hash source, usr=signed" "$IMG/unsigned.raw" \
        sx --root="$R" --no-reload --image-policy='usr=signed' merge "$IMG/unsigned.raw"
unmerge_if_merged
refused "unsigned, no root hash source, usr=verity" "$IMG/unsigned.raw" \
        sx --root="$R" --no-reload --image-policy='usr=verity' merge "$IMG/unsigned.raw"
unmerge_if_merged
# Root hash sources: a .usrhash sidecar for the repart image, the user.verity.usrhash xattr for the
# rootless one (sidecar where the file system has no user xattrs).
echo "$ROOTHASH_UNSIGNED" >"$IMG/unsigned.usrhash"
if python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.verity.usrhash", sys.argv[2].encode())' \
                "$IMG/unsignedu.raw" "$ROOTHASH_UNSIGNEDU" 2>/dev/null; then
        SRC_UNSIGNEDU="xattr user.verity.usrhash"
else
        echo "$ROOTHASH_UNSIGNEDU" >"$IMG/unsignedu.usrhash"
        SRC_UNSIGNEDU="unsignedu.usrhash"
fi
for n in unsigned unsignedu; do
        dissect_json dissect "$IMG/$n.raw"
        assert_eq "$(dv usr protection)" verity "$n: dissect --json verity.usr.protection"
        assert_eq "$(dv usr signed)" false "$n: dissect --json verity.usr.signed"
        assert_eq "$(dv usr checkedBy)" userspace "$n: dissect --json verity.usr.checkedBy"
        refused "$n, usr=signed" "$IMG/$n.raw" \
                sx --root="$R" --no-reload --image-policy='usr=signed' merge "$IMG/$n.raw"
        unmerge_if_merged
        merge_ok "$n, usr=verity" "$IMG/$n.raw" "$n" --image-policy='usr=verity'
        assert_eq "$(status_layer verity)" '["verity"]' "$n: status layer verity"
        assert_eq "$(status_layer checkedBy)" '["userspace"]' "$n: status layer checkedBy"
        unmerge_ok "$n, after unmerge"
done
dissect_json dissect "$IMG/unsigned.raw"
assert_eq "$(dv usr rootHash)" "$ROOTHASH_UNSIGNED" "unsigned: dissect --json verity.usr.rootHash"
assert_contains "$(dv usr rootHashSource)" "unsigned.usrhash" "unsigned: dissect --json verity.usr.rootHashSource"
dissect_json dissect "$IMG/unsignedu.raw"
assert_eq "$(dv usr rootHash)" "$ROOTHASH_UNSIGNEDU" "unsignedu: dissect --json verity.usr.rootHash"
assert_contains "$(dv usr rootHashSource)" "$SRC_UNSIGNEDU" "unsignedu: dissect --json verity.usr.rootHashSource"

# ---------------------------------------------------------------------------------------------
log "6. no verity: plain squashfs, erofs and a directory"
for n in plainsq.raw plainero.raw plaindir; do
        dissect_json dissect "$IMG/$n"
        assert_eq "$(dv root protection)" unprotected "$n: dissect --json verity.root.protection"
done
assert_ok sx --root="$R" --no-reload merge "$IMG/plainsq.raw" "$IMG/plainero.raw" "$IMG/plaindir"
for n in plainsq plainero plaindir; do
        assert_eq "$("$R/usr/bin/$n-hello" 2>&1)" "hello from $n" "$n-hello from the merge"
done
assert_eq "$(status_layer verity)" '["unprotected", "unprotected", "unprotected"]' "status layers verity"
unmerge_ok
for n in plainsq.raw plainero.raw plaindir; do
        refused "$n, verity required" "$IMG/$n" \
                sx --root="$R" --no-reload --image-policy="$STRICT_VERITY" merge "$IMG/$n"
        unmerge_if_merged
done

# ---------------------------------------------------------------------------------------------
log "7. bare erofs with .verity and .roothash sidecars"
dissect_json dissect "$IMG/bare/bare.raw"
assert_eq "$(dv root protection)" verity "dissect --json verity.root.protection"
assert_eq "$(dv root rootHash)" "$ROOTHASH_BARE" "dissect --json verity.root.rootHash"
assert_contains "$(dv root rootHashSource)" "bare.roothash" "dissect --json verity.root.rootHashSource"
assert_eq "$(dv root checkedBy)" userspace "dissect --json verity.root.checkedBy"
merge_ok "bare erofs + sidecars" "$IMG/bare/bare.raw" bare --image-policy="$STRICT_VERITY"
assert_eq "$(status_layer verity)" '["verity"]' "status layer verity"
unmerge_ok
log "7b. a .roothash.p7s by the trusted certificate makes it signed"
printf '%s' "$ROOTHASH_BARE" | openssl smime -sign -noattr -binary -signer "$TEST_CERT" -inkey "$TEST_KEY" \
        -outform DER -out "$IMG/bare/bare.roothash.p7s"
dissect_json dissect "$IMG/bare/bare.raw"
assert_eq "$(dv root protection)" signed "dissect --json verity.root.protection"
assert_eq "$(dv root signerFingerprint)" "$FP" "dissect --json verity.root.signerFingerprint"
rm -f "$IMG/bare/bare.roothash.p7s"
log "7c. a flipped data byte is refused"
# Past the erofs superblock (1024..1152).
BARE_SIZE=$(stat -c %s "$IMG/bare/bare.raw")
flip "$IMG/bare/bare.raw" $((1152 + (BARE_SIZE - 1152) / 2))
refused "bare erofs, tampered data" "$IMG/bare/bare.raw" sx --root="$R" --no-reload merge "$IMG/bare/bare.raw"
unmerge_if_merged

# ---------------------------------------------------------------------------------------------
log "8. --verity=off and --verity=kernel"
merge_ok "--verity=off" "$IMG/signed.raw" signed --verity=off
assert_eq "$(status_layer verity)" '["unprotected"]' "--verity=off: status layer verity"
assert_eq "$(status_layer checkedBy)" '["none"]' "--verity=off: status layer checkedBy"
unmerge_ok
refused "--verity=off, signed-only policy" "$IMG/signed.raw" \
        sx --root="$R" --no-reload --verity=off --image-policy="$STRICT_SIGNED" merge "$IMG/signed.raw"
unmerge_if_merged
if [[ -e /dev/mapper/control ]]; then
        log "device-mapper is present here: not checking --verity=kernel refusal"
else
        refused "--verity=kernel without device-mapper" "$IMG/signed.raw" \
                sx --root="$R" --no-reload --verity=kernel merge "$IMG/signed.raw"
        if [[ $LAST_STDERR == *dm-verity* || $LAST_STDERR == *device-mapper* ]]; then
                pass "--verity=kernel: stderr mentions dm-verity/device-mapper"
        else
                fail "--verity=kernel: stderr does not mention dm-verity or device-mapper: '$LAST_STDERR'"
        fi
        if [[ $(merged_exts "$R" /usr) != - ]]; then
                fail "--verity=kernel merged anyway: verity=$(status_layer verity) checkedBy=$(status_layer checkedBy)"
        fi
        unmerge_if_merged
fi

# ---------------------------------------------------------------------------------------------
log "9. dissect --validate without privileges; bad policies"
PUB=$SCRATCH/pub
mkdir -p "$PUB"
cp "$IMG/signed.raw" "$PUB/signed.raw"
chmod 0644 "$PUB/signed.raw" "$VD/test.crt"
chmod 0755 "$PUB" "$VD" "$EMPTY"
chmod 0711 "$SCRATCH"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if ! "${NOBODY[@]}" test -r "$PUB/signed.raw" || ! "${NOBODY[@]}" test -x "$SYSEXT_IDMAP"; then
        fail "nobody cannot read the image or run $SYSEXT_IDMAP (check the permissions of the build dir)"
else
        assert_ok "${NOBODY[@]}" "$SYSEXT_IDMAP" dissect --validate "$PUB/signed.raw"
        assert_ok "${NOBODY[@]}" "$SYSEXT_IDMAP" --image-policy="$STRICT_SIGNED" dissect --validate "$PUB/signed.raw"
        assert_ok "${NOBODY[@]}" "$SYSEXT_IDMAP" --json=short --image-policy="$STRICT_SIGNED" dissect --validate "$PUB/signed.raw"
        if ((LAST_RC == 0)); then
                assert_eq "$(json_get "$LAST_STDOUT" 'j["verity"]["usr"]["protection"]')" signed "unprivileged validate: protection"
        fi
        assert_fail env SYSEXT_IDMAP_VERITY_DIRS="$EMPTY" "${NOBODY[@]}" "$SYSEXT_IDMAP" \
                --image-policy="$STRICT_SIGNED" dissect --validate "$PUB/signed.raw"
        assert_eq "$LAST_RC" 1 "unprivileged validate, no trusted certificate: exit code"
        assert_one_stderr_line "$PUB/signed.raw"
fi
log "9b. plain dissect reports a refusal but exits 0; --validate exits 1"
SYSEXT_IDMAP_VERITY_DIRS=$EMPTY dissect_json --image-policy="$STRICT_SIGNED" dissect "$IMG/signed.raw"
assert_eq "$(json_get "$D" 'j["policyAllowed"]')" false "dissect --json policyAllowed"
assert_contains "$(json_get "$D" 'j["policyRefusal"]')" "usr" "dissect --json policyRefusal"
# The policy comes back normalized (designator order), so compare its parts.
assert_eq "$(json_get "$D" 'sorted(j["imagePolicy"].split(":"))')" '["root=absent", "usr=signed+absent"]' \
        "dissect --json imagePolicy"
SYSEXT_IDMAP_VERITY_DIRS=$EMPTY assert_ok sx --image-policy="$STRICT_SIGNED" dissect "$IMG/signed.raw"
assert_contains "$LAST_STDOUT" "Policy: refused" "dissect text"
SYSEXT_IDMAP_VERITY_DIRS=$EMPTY assert_fail sx --image-policy="$STRICT_SIGNED" dissect --validate "$IMG/signed.raw"
assert_eq "$LAST_RC" 1 "dissect --validate refused: exit code"
assert_one_stderr_line "$IMG/signed.raw"
log "9c. bad policies"
for p in 'usr=bogus' 'usr=verity:usr=signed' 'nonsense=open'; do
        refused "merge --image-policy=$p" "" sx --root="$R" --no-reload --image-policy="$p" merge "$IMG/signed.raw"
        unmerge_if_merged
        assert_fail sx --image-policy="$p" dissect "$IMG/signed.raw"
        assert_eq "$LAST_RC" 1 "dissect --image-policy=$p: exit code"
        assert_one_stderr_line
        assert_fail sx --image-policy="$p" dissect --validate "$IMG/signed.raw"
        assert_eq "$LAST_RC" 1 "dissect --validate --image-policy=$p: exit code"
        assert_one_stderr_line
done

assert_no_scratch_loops "at the end"
finish
