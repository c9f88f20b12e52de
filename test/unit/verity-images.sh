#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the verity test images for test-verity in the current directory, with the real tools:
#   repart.raw         systemd-repart DDI: squashfs usr + usr-verity + usr-verity-sig (signed)
#   ddi.raw            rootless DDI: erofs usr + veritysetup hash + sig JSON, sfdisk
#   bare.raw           bare erofs + bare.verity + bare.roothash + bare.roothash.p7s
# and for each NAME a NAME.expected (root hash hex). cert.pem/key.pem sign, cert.fp is the sha256 of
# the DER certificate, other.pem is an unrelated certificate. Functions are reusable for variants:
#   verity-images.sh mkddi OUT DATA HASH SIGJSON DATAUUID HASHUUID [SIGSIZE_SECTORS]
set -eu

USR=8484680c-9521-48c6-9c11-b0720656f69e
USR_VERITY=77ff5f63-e7b6-4633-acf4-1565b864c0e6
USR_VERITY_SIG=e7bb33fb-06cf-4e81-8273-e543b413e2e2

uuid_of() { # hex (32 chars) -> 8-4-4-4-12
        echo "${1:0:8}-${1:8:4}-${1:12:4}-${1:16:4}-${1:20:12}"
}

sectors() { echo $(( ($(stat -c %s "$1") + 511) / 512 )); }

mkddi() { # OUT DATA HASH SIGJSON DATAUUID HASHUUID [SIGSECTORS]
        local out=$1 data=$2 hash=$3 sig=$4 du=$5 hu=$6 sigsec=${7:-8}
        local ds hs
        ds=$(sectors "$data"); hs=$(sectors "$hash")
        rm -f "$out"
        truncate -s $(( (2048 + ds + hs + sigsec + 2048) * 512 )) "$out"
        printf 'label: gpt\nstart=2048, size=%d, type=%s, uuid=%s, name=usr\nstart=%d, size=%d, type=%s, uuid=%s, name=usr-verity\nstart=%d, size=%d, type=%s, name=usr-verity-sig\n' \
                "$ds" $USR "$du" $((2048 + ds)) "$hs" $USR_VERITY "$hu" $((2048 + ds + hs)) "$sigsec" $USR_VERITY_SIG |
                sfdisk -q "$out" >/dev/null
        dd if="$data" of="$out" bs=512 seek=2048 conv=notrunc status=none
        dd if="$hash" of="$out" bs=512 seek=$((2048 + ds)) conv=notrunc status=none
        dd if="$sig" of="$out" bs=512 seek=$((2048 + ds + hs)) conv=notrunc status=none
        echo $((2048 * 512)) > "$out.dataoff"
        echo $(((2048 + ds) * 512)) > "$out.hashoff"
        echo $(((2048 + ds + hs) * 512)) > "$out.sigoff"
}

sign() { # HASH OUT.p7s [cert key]
        printf '%s' "$1" | openssl smime -sign -noattr -binary -inkey "${4:-key.pem}" -signer "${3:-cert.pem}" -outform DER -out "$2"
}

sigjson() { # HASH P7S FP > json
        printf '{"rootHash":"%s","signature":"%s","certificateFingerprint":"%s"}' "$1" "$(base64 -w0 "$2")" "$3"
}

if [ "${1:-}" = mkddi ]; then
        shift
        mkddi "$@"
        exit 0
fi

mkdir -p src/usr/lib/extension-release.d src/usr/share/testext
printf 'ID=_any\n' > src/usr/lib/extension-release.d/extension-release.test
head -c 300000 /dev/urandom > src/usr/share/testext/blob
echo hello > src/usr/share/testext/hello

openssl req -new -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=verity-test 2>/dev/null
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout otherkey.pem -out other.pem -days 365 -subj /CN=other 2>/dev/null
openssl x509 -in cert.pem -outform DER | sha256sum | cut -d' ' -f1 > cert.fp

# (b) rootless DDI
mkfs.erofs --quiet usr.erofs src/usr >/dev/null
veritysetup format usr.erofs usr.verity --root-hash-file=ddi.expected >/dev/null
H=$(cat ddi.expected)
sign "$H" ddi.p7s
sigjson "$H" ddi.p7s "$(cat cert.fp)" > ddi.json
mkddi ddi.raw usr.erofs usr.verity ddi.json "$(uuid_of "${H:0:32}")" "$(uuid_of "${H: -32}")"

# (c) bare erofs with sidecars
mkfs.erofs --quiet bare.raw src >/dev/null
veritysetup format bare.raw bare.verity --root-hash-file=bare.expected >/dev/null
cp bare.expected bare.roothash
echo >> bare.roothash
sign "$(cat bare.expected)" bare.roothash.p7s

# (a) systemd-repart DDI (root only; optional)
if command -v systemd-repart >/dev/null && command -v mksquashfs >/dev/null; then
        mkdir -p defs
        printf '[Partition]\nType=usr\nFormat=squashfs\nCopyFiles=%s/src/usr:/\nVerity=data\nVerityMatchKey=usr\n' "$PWD" > defs/10-usr.conf
        printf '[Partition]\nType=usr-verity\nVerity=hash\nVerityMatchKey=usr\n' > defs/20-usr-verity.conf
        printf '[Partition]\nType=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n' > defs/30-usr-verity-sig.conf
        if systemd-repart --empty=create --size=auto --dry-run=no --definitions=defs --private-key=key.pem \
                        --certificate=cert.pem --json=short repart.raw > repart.json 2>repart.log; then
                grep -o '"roothash":"[0-9a-f]*"' repart.json | head -n1 | cut -d'"' -f4 > repart.expected
        fi
fi
exit 0
