#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Generate the seed corpora for the fuzzers in test/fuzz (no binary blobs live in git):
#   test/fuzz/make-corpus.sh OUTDIR
# creates OUTDIR/fuzz-NAME/ for every fuzzer, plus OUTDIR/certs/ (a certificate the verity-sig seeds
# are signed with; point $SYSEXT_IDMAP_VERITY_DIRS at it) and OUTDIR/.complete when done. Needs
# mksquashfs, mkfs.erofs, mkfs.ext4, sfdisk, veritysetup, openssl; a missing tool only drops its seeds.
# Images are tiny (sectors, not MiB) so that libFuzzer can mutate them quickly.
set -eu

out=${1:?usage: make-corpus.sh OUTDIR}
mkdir -p "$out"
out=$(realpath "$out")
rm -rf "${out:?}"/fuzz-* "$out/certs" "$out/.complete"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

have() { command -v "$1" >/dev/null 2>&1; }

for f in dissect release verity-sig idmap policy image-name config varlink; do
        mkdir -p "$out/fuzz-$f"
done
mkdir -p "$out/certs"

# seed DIR NAME: stdin → DIR/NAME
seed() { cat > "$out/fuzz-$1/$2"; }

# ---- images (fuzz-dissect) ----

# DPS type UUIDs (x86-64 is the native architecture of the fuzzing hosts; arm64 is foreign).
ROOT=4f68bce3-e8cd-4db1-96e7-fbcaf984b709
ROOT_VERITY=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5
USR=8484680c-9521-48c6-9c11-b0720656f69e
USR_VERITY=77ff5f63-e7b6-4633-acf4-1565b864c0e6
USR_VERITY_SIG=e7bb33fb-06cf-4e81-8273-e543b413e2e2
ROOT_X86=44479540-f297-41b2-9af7-d131d5f0458a
ROOT_ARM64=b921b045-1df0-41c3-af44-4c6f280d3fae

mkdir -p tree/usr/lib/extension-release.d tree/usr/share/x
printf 'ID=_any\n' > tree/usr/lib/extension-release.d/extension-release.seed
echo hello > tree/usr/share/x/hello

sectors() { echo $(( ($(stat -c %s "$1") + 511) / 512 )); }
uuid_of() { echo "${1:0:8}-${1:8:4}-${1:12:4}-${1:16:4}-${1:20:12}"; }

# gpt OUT "TYPE:FILE[:UUID[:NAME[:GUIDBITS]]]"... (GUIDBITS: attribute bit numbers, "60,63") — partitions packed from LBA 34, backup GPT at the end.
gpt() {
        local img=$1 lba=34 spec script total=0 f t u n a s
        shift
        script=$'label: gpt\nfirst-lba: 34\n'
        for spec in "$@"; do
                IFS=: read -r t f u n a <<< "$spec"
                s=$(sectors "$f")
                script+="start=$lba, size=$s, type=$t${u:+, uuid=$u}${n:+, name=$n}${a:+, attrs=\"GUID:$a\"}"$'\n'
                lba=$((lba + s))
        done
        total=$((lba + 33))
        rm -f "$img"
        truncate -s $((total * 512)) "$img"
        sfdisk -q "$img" <<< "$script" >/dev/null
        lba=34
        for spec in "$@"; do
                IFS=: read -r t f u n a <<< "$spec"
                dd if="$f" of="$img" bs=512 seek="$lba" conv=notrunc status=none
                lba=$((lba + $(sectors "$f")))
        done
}

if have mksquashfs; then
        mksquashfs tree sq.img -noappend -quiet -all-root >/dev/null
        cp sq.img "$out/fuzz-dissect/bare-squashfs"
        head -c 2048 sq.img | seed dissect truncated-squashfs
fi
if have mkfs.erofs; then
        mkfs.erofs ero.img tree >/dev/null 2>&1
        cp ero.img "$out/fuzz-dissect/bare-erofs"
        # claims more blocks than the file holds: the superblock size check must refuse it
        head -c 2048 ero.img | seed dissect truncated-erofs
fi
if have mkfs.ext4; then
        truncate -s 64K ext4.img
        mkfs.ext4 -q -F -b 1024 -N 16 -O ^has_journal,^resize_inode ext4.img >/dev/null 2>&1
        cp ext4.img "$out/fuzz-dissect/bare-ext4"
        head -c 8192 ext4.img | seed dissect truncated-ext4
fi
# superblock-only seeds for the size readers (btrfs, xfs: no mkfs at this size)
python3 - "$out/fuzz-dissect" <<'PY'
import struct, sys
d = sys.argv[1]
sb = bytearray(64 * 1024 + 4096)
sb[64 * 1024 + 0x40:64 * 1024 + 0x48] = b"_BHRfS_M"
struct.pack_into("<Q", sb, 64 * 1024 + 0x70, 1 << 40)   # total_bytes
struct.pack_into("<Q", sb, 64 * 1024 + 0x88, 1)         # num_devices
open(d + "/sb-btrfs", "wb").write(sb)
x = bytearray(4096)
x[0:4] = b"XFSB"
struct.pack_into(">I", x, 4, 4096)
struct.pack_into(">Q", x, 8, 1 << 50)
open(d + "/sb-xfs", "wb").write(x)
PY

if have sfdisk && [ -f sq.img ]; then
        gpt gpt-usr.img "$USR:sq.img::usr_1.2"
        cp gpt-usr.img "$out/fuzz-dissect/gpt-usr"
        head -c $(( $(stat -c %s gpt-usr.img) - 4096 )) gpt-usr.img | seed dissect gpt-truncated
        [ -f ero.img ] && gpt gpt-root.img "$ROOT:ero.img::root" "$ROOT_X86:sq.img::root-x86" "$ROOT_ARM64:sq.img::root-arm64" &&
                cp gpt-root.img "$out/fuzz-dissect/gpt-root-archs"
        gpt gpt-noauto.img "$USR:sq.img::usr_2:63" "$USR:sq.img::usr_1:60,59"
        cp gpt-noauto.img "$out/fuzz-dissect/gpt-flags"

        # a DDI with usr, usr-verity and a signed usr-verity-sig
        if have veritysetup && have openssl; then
                openssl req -new -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "$out/certs/fuzz.crt" -days 3650 \
                        -subj /CN=sysext-idmap-fuzz 2>/dev/null
                rm -f hash.img
                rh=$(veritysetup format sq.img hash.img | sed -n 's/^Root hash:[[:space:]]*//p')
                printf '%s' "$rh" | openssl smime -sign -noattr -binary -inkey key.pem -signer "$out/certs/fuzz.crt" -outform DER -out sig.p7s
                fp=$(openssl x509 -in "$out/certs/fuzz.crt" -outform DER | sha256sum | cut -d' ' -f1)
                printf '{"rootHash":"%s","signature":"%s","certificateFingerprint":"%s"}' "$rh" "$(base64 -w0 sig.p7s)" "$fp" > sig.json
                cp sig.json sigpad.img
                truncate -s 4096 sigpad.img
                gpt ddi.img "$USR:sq.img:$(uuid_of "${rh:0:32}"):usr" "$USR_VERITY:hash.img:$(uuid_of "${rh:32:32}")" \
                        "$USR_VERITY_SIG:sigpad.img"
                cp ddi.img "$out/fuzz-dissect/gpt-ddi-signed"
        fi
fi

# ---- release files ----
seed release debian <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
HOME_URL="https://www.debian.org/"
EOF
printf 'ID=_any\n' | seed release any
printf 'ID=debian\nVERSION_ID=12\nSYSEXT_SCOPE="system initrd"\nARCHITECTURE=x86-64\n' | seed release match
printf 'ID=fedora\nSYSEXT_LEVEL=1.0\nARCHITECTURE=arm64\nSYSEXT_SCOPE=portable\n' | seed release mismatch
printf 'ID=ubuntu\r\nVERSION_ID=12\r\n# comment \\\ncontinued\n; other\nEMPTY=\n' | seed release crlf
printf "A='single \"q\" \$x'\nB=\"double \\\\\" \\\$ \\\\\\\\ \\\\n cont\\\\\nline\"\nC=un\\\\ quoted\\\\\n  trailing   \nID=debian\nID=override\n" | seed release quoting
printf 'ID="unterminated\n' | seed release unterminated
printf 'BAD KEY=1\n' | seed release badkey
printf 'ID=\x1b[31mred\n' | seed release control
printf 'ID=\xc3\x28\n' | seed release bad-utf8
# regression (fixed): an invalid key quoted to 64 bytes cut a UTF-8 sequence in the message
printf 'A23456789 12345678901234567890123456789012345678901234567890123\xc3\xa4=1\n' | seed release regression-key-utf8-cut

# ---- verity signatures ----
if have openssl; then
        fixed=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        [ -f key.pem ] || openssl req -new -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "$out/certs/fuzz.crt" \
                -days 3650 -subj /CN=sysext-idmap-fuzz 2>/dev/null
        openssl req -new -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 3650 -subj /CN=other 2>/dev/null
        fp=$(openssl x509 -in "$out/certs/fuzz.crt" -outform DER | sha256sum | cut -d' ' -f1)
        ofp=$(openssl x509 -in other.crt -outform DER | sha256sum | cut -d' ' -f1)
        # DER mode (first byte 0x30): signatures over the fuzzer's fixed root hash
        printf '%s' "$fixed" | openssl smime -sign -noattr -binary -inkey key.pem -signer "$out/certs/fuzz.crt" -outform DER |
                seed verity-sig der-trusted
        printf '%s' "$fixed" | openssl smime -sign -noattr -binary -inkey other.key -signer other.crt -outform DER |
                seed verity-sig der-untrusted
        printf '%s' "$fixed" | openssl smime -sign -noattr -binary -nocerts -inkey key.pem -signer "$out/certs/fuzz.crt" -outform DER |
                seed verity-sig der-nocerts
        # regression (fixed): md_algs with an unknown digest OID made OpenSSL 3.0's PKCS7_verify() leak
        python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); o = bytes.fromhex("0609608648016503040201")
sys.stdout.buffer.write(d.replace(o, bytes.fromhex("0609608648016501040201"), 1))' "$out/fuzz-verity-sig/der-trusted" |
                seed verity-sig regression-der-unknown-digest
        printf 'not the hash' | openssl smime -sign -noattr -binary -inkey key.pem -signer "$out/certs/fuzz.crt" -outform DER |
                seed verity-sig der-wrong-content
        # JSON mode: what a signature partition holds
        printf '%s' "$fixed" | openssl smime -sign -noattr -binary -inkey key.pem -signer "$out/certs/fuzz.crt" -outform DER > t.p7s
        printf '%s' "$fixed" | openssl smime -sign -noattr -binary -inkey other.key -signer other.crt -outform DER > o.p7s
        b=$(base64 -w0 t.p7s)
        printf '{"rootHash":"%s","signature":"%s","certificateFingerprint":"%s"}' "$fixed" "$b" "$fp" | seed verity-sig json-trusted
        printf '{"rootHash":"%s","signature":"%s","certificateFingerprint":"%s"}' "$fixed" "$b" "$ofp" | seed verity-sig json-fp-mismatch
        printf '{"rootHash":"%s","signature":"%s"}' "$fixed" "$(base64 -w0 o.p7s)" | seed verity-sig json-untrusted
        { printf '{ "signature" : "%s",\n "rootHash" : "%s" }\n' "$b" "${fixed^^}"; head -c 300 /dev/zero; } | seed verity-sig json-padded
        printf '{"rootHash":"%s","signature":"%s"} x' "$fixed" "$b" | seed verity-sig json-trailing
        printf '{"rootHash":"%s","signature":"AAA="}' "$fixed" | seed verity-sig json-short-sig
        printf '{"rootHash":"%s","signature":"A=A="}' "$fixed" | seed verity-sig json-bad-base64
        printf '{"rootHash":1,"signature":"AAAA"}' | seed verity-sig json-wrong-type
        printf '{"rootHash":"abc","signature":"AAAA","certificateFingerprint":"00"}' | seed verity-sig json-short-hash
        printf '["rootHash"]' | seed verity-sig json-array
        printf '{"rootHash":"%s\\u0000ff","signature":"AAAA"}' "$fixed" | seed verity-sig json-nul-escape
        [ -f sig.json ] && cp sig.json "$out/fuzz-verity-sig/json-ddi"
fi

# ---- --idmap specifications (the last one: regression, invalid UTF-8 was quoted into messages) ----
i=0
for s in "" identity foreign auto "auto,foreign" "b:0:1000:1" "u:0:1000:65536,g:0:1000:65536" "b:0:0:1,b:1:100000:65535" \
         "user:nobody" "user:root" "userns:/proc/1/ns/user" "pid:1" "pid:0" "b:4294967294:0:1" \
         "b:0:4294967295:1" "b:1:2" "b::1:1" "b:0:0:1,,b:1:1:1" "identity,foreign" "u:10:10:10,u:15:100:10" \
         $'b:0:0:1\n' $'b:0:0:1,\x85'; do
        printf '%s' "$s" | seed idmap "spec-$i"
        i=$((i + 1))
done
# regression (fixed): a message longer than the error buffer was shortened inside a UTF-8 sequence
# (4096-byte buffer, 1024 bytes kept in front: the end cut lands inside an "ä" here)
python3 -c 'print(",".join("b:%d:%d:1" % (i, i) for i in range(300)) + ",,\u00e4" * 800 + "xyz", end="")' | seed idmap regression-long-message-utf8
# 341 extents: one more than the kernel allows
python3 -c 'print(",".join("b:%d:%d:1" % (i, i) for i in range(341)), end="")' | seed idmap too-many

# ---- image policies ("usr-verity-sig=absent:=absent:usr=": regression, its simplified form was not
# equivalent) ----
i=0
for s in "" "-" "*" "~" "=absent" "=open" "=ignore" "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent" \
         "root=signed+absent:usr=signed+absent" "usr=verity+read-only-on+growfs-off+erofs+squashfs:=unused+absent" \
         "usr=verity:usr-verity=unused+absent:usr-verity-sig=absent" " root = signed : = open " \
         "usr-verity-sig=absent:=absent:usr=" "home=encrypted:srv=open:esp=ignore:xbootldr=-:swap=absent:tmp=open:var=open" \
         "root=open:root=open" "=open:=open" "bogus=open" "root=bogus" "root=open+" "root" "root=open::" \
         "root=read-only-on+read-only-off+growfs-on+growfs-off+btrfs+ext4+f2fs+vfat+xfs"; do
        printf '%s' "$s" | seed policy "policy-$i"
        i=$((i + 1))
done

# ---- image names and versions (three strings separated by NUL) ----
i=0
for s in "foo.raw" "foo_1.2.raw" "foo_1.2.sysext.raw" "foo" "foo_" "_1.raw" ".hidden.raw" "a/b.raw" \
         $'bad\x01.raw' "foo_1~rc1.raw" "näme_2.raw"; do
        printf '%s' "$s" | seed image-name "name-$i"
        i=$((i + 1))
done
i=0
for t in "1.0 1.0.1 1.1" "1~rc1 1 1.0" "1-2 1^2 1.2" "a b 1" "01 1 001" "1.0a 1.0 1.0b" "~ - ^" \
         "122.1 123 99999999999999999999999" "1_2 1.2 1-2" "foo-1.2~rc3^p1 foo-1.2 foo-1.2.0"; do
        read -r a b c <<< "$t"
        printf '%s\0%s\0%s' "$a" "$b" "$c" | seed image-name "versions-$i"
        i=$((i + 1))
done

# sysext.conf: sections, keys, drop-in style, junk
printf '[SysExt]\nMutable=import\nImagePolicy=root=verity+signed+absent:usr=signed+absent\n' | seed config main
printf '# comment\n; other\n[ConfExt]\nMutable=ephemeral-import\n\n[SysExt]\n  Mutable = yes  \n' | seed config sections
printf '[SysExt\nMutable\n=x\n[Unknown]\nKey=\n\\\n' | seed config junk

# Varlink byte streams (fuzz-varlink): a control byte before each read (low 6 bits: length 1 + 4n,
# top 2 bits: 3 fds per step), then the bytes.
vl() { python3 -c '
import sys
out = b""
for chunk in sys.argv[2:]:
    fds = 0
    if chunk.startswith("@"):
        fds, chunk = 1, chunk[1:]
    b = chunk.encode().decode("unicode_escape").encode("latin-1")
    while b:
        n = min(len(b), 1 + 63 * 4)
        n = 1 + (n - 1) // 4 * 4
        out += bytes([(fds << 6) | ((n - 1) // 4)]) + b[:n]
        b, fds = b[n:], 0
sys.stdout.buffer.write(out)' "$@" | seed varlink "$1"; }
vl getinfo '{"method":"org.varlink.service.GetInfo"}\0'
vl describe '{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"fuzz"}}\0'
vl take-fd '@{"method":"fuzz.Take","parameters":{"fd":0,"fds":[1,2,0]}}\0'
vl bad-index '@{"method":"fuzz.Take","parameters":{"fd":"/etc/passwd","fds":[7]}}\0'
vl pipelined '{"method":"fuzz.Fail"}\0{"method":"nope"}\0{"method":"fuzz.Take","oneway":true}\0'
vl more '{"method":"fuzz.Take","more":true}\0{"method":"fuzz.Take","upgrade":true}\0'
vl split '@{"method":"fuzz.' 'Take","parameters":{"x":1}}\0'
vl fds-mid-message '{"method":"fuzz.' '@Take","parameters":{"x":1}}\0'
vl garbage 'garbage\0{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\0'

touch "$out/.complete"
for d in "$out"/fuzz-*; do
        echo "$(basename "$d"): $(find "$d" -type f | wc -l) seeds"
done
