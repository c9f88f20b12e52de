#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Discovery (`list`) and dissection (`dissect`) of every kind of image, text and JSON.
set -euo pipefail
source "$TEST_LIB"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs mkfs.ext4 systemd-repart openssl veritysetup sfdisk
setup_scratch

R=$SCRATCH/root
make_root "$R"
E=$R/var/lib/extensions

log "building images"
make_ext_dir "$E/dirext" dirext
make_ext_squashfs "$E/sq.raw" sq
make_ext_erofs "$E/ero.raw" ero
make_ext_ext4 "$E/ext.raw" ext
make_ext_squashfs "$E/foo_1.2.raw" foo
make_ext_dir "$E/anyx" anyx ID=_any
# Versions: the file name's, else SYSEXT_VERSION_ID; VERSION_ID (the host release) is none.
make_ext_dir "$E/verx" verx ID=debian VERSION_ID=12 SYSEXT_VERSION_ID=3.4
make_ext_squashfs "$E/both_2.0.raw" both ID=debian VERSION_ID=12 SYSEXT_VERSION_ID=9
# ID_LIKE is a property of the host: an extension may name any word of the host's ID_LIKE.
make_ext_dir "$E/likex" likex ID=testlike VERSION_ID=12
make_ext_dir "$E/levelx" levelx ID=debian SYSEXT_LEVEL=1.0
printf 'ID_LIKE="otherlike testlike"\nSYSEXT_LEVEL=1.0\n' >>"$R/usr/lib/os-release"
# Masked: an empty directory in /etc/extensions, and a /dev/null symlink in /run/extensions.
make_ext_squashfs "$E/masked.raw" masked
mkdir "$R/etc/extensions/masked"
make_ext_dir "$E/nulled" nulled
ln -s /dev/null "$R/run/extensions/nulled.raw"
# Shadowed: the same name in /run/extensions wins over /var/lib/extensions.
make_ext_squashfs "$E/shadow.raw" shadow
make_ext_dir "$R/run/extensions/shadow" shadow
# Incompatible ones.
make_ext_squashfs "$E/fed.raw" fed ID=fedora VERSION_ID=39
make_ext_dir "$E/oldver" oldver ID=debian VERSION_ID=11
make_ext_dir "$E/initrdonly" initrdonly ID=debian VERSION_ID=12 SYSEXT_SCOPE=initrd
make_ext_dir "$E/armx" armx ID=debian VERSION_ID=12 ARCHITECTURE=arm64
# GPT DDIs.
make_ext_ddi --sign "$E/ddi.raw" ddi
ROOTHASH_DDI=$DDI_ROOTHASH
make_ext_ddi_unpriv --sign "$E/ddiu.raw" ddiu
ROOTHASH_DDIU=$DDI_ROOTHASH

snapshot_state "$SCRATCH/state.before"

log "list (text)"
assert_ok "$SYSEXT_IDMAP" --root="$R" list
text=$LAST_STDOUT
for col in NAME TYPE PATH VERSION COMPATIBLE; do
        assert_contains "$(head -n1 <<<"$text")" "$col" "list header"
done
for n in dirext sq ero ext foo anyx likex levelx shadow fed oldver initrdonly armx ddi ddiu; do
        assert_contains "$text" "$n" "list"
done
assert_contains "$text" "1.2" "list (version of foo_1.2.raw)"

log "list --json"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
J=$LAST_STDOUT
assert_json_valid "$J" "list --json=short"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=pretty list
assert_eq "$(json_get "$LAST_STDOUT" 'j')" "$(json_get "$J" 'j')" "list --json=pretty equals short"

jq_img() {      # jq_img NAME KEY
        json_get "$J" "[i.get('$2', '<no key $2>') for i in j if i['name'] == '$1']"
}
assert_eq "$(json_get "$J" 'len([i["name"] for i in j]) == len(set(i["name"] for i in j))')" true "names are unique"
assert_eq "$(json_get "$J" 'sorted({"compatible", "masked", "name", "path", "reason", "type", "version"} - set(k for i in j for k in i))')" \
        '[]' "missing keys in list objects"
for n in dirext sq ero ext foo anyx likex levelx shadow ddi ddiu; do
        assert_eq "$(jq_img "$n" compatible)" "[true]" "$n compatible"
        assert_eq "$(jq_img "$n" reason)" "[null]" "$n reason"
        assert_eq "$(jq_img "$n" masked)" "[false]" "$n masked"
done
assert_eq "$(jq_img dirext type)" '["directory"]' "dirext type"
for n in sq ero ext foo ddi ddiu; do
        assert_eq "$(jq_img "$n" type)" '["raw"]' "$n type"
done
assert_eq "$(jq_img foo version)" '["1.2"]' "foo version"
assert_contains "$(jq_img foo path)" "/var/lib/extensions/foo_1.2.raw" "foo path"
assert_contains "$(jq_img shadow path)" "/run/extensions/shadow" "shadow path (run/ wins over var/lib/)"
assert_eq "$(jq_img shadow type)" '["directory"]' "shadow type"
for n in masked nulled; do
        assert_eq "$(json_get "$J" "[i['masked'] for i in j if i['name'] == '$n']")" "[true]" "$n masked"
done
for n in fed oldver initrdonly armx; do
        assert_eq "$(jq_img "$n" compatible)" "[false]" "$n compatible"
        assert_eq "$(json_get "$J" "[isinstance(i['reason'], str) and len(i['reason']) > 0 for i in j if i['name'] == '$n']")" \
                "[true]" "$n has a reason"
done

log "list: one version rule for the text and the JSON"
assert_ok "$SYSEXT_IDMAP" --root="$R" --no-legend list
text_nolegend=$LAST_STDOUT
for nv in dirext:null sq:null verx:3.4 foo:1.2 both:2.0 ddi:null; do
        n=${nv%%:*} v=${nv#*:}
        want_json=$([[ $v == null ]] && echo '[null]' || echo "[\"$v\"]")
        assert_eq "$(jq_img "$n" version)" "$want_json" "$n version (JSON)"
        assert_eq "$(awk -v n="$n" '$1 == n { print $4 }' <<<"$text_nolegend")" "$([[ $v == null ]] && echo - || echo "$v")" \
                "$n VERSION (text)"
done

log "--force lists incompatible images as usable"
assert_ok "$SYSEXT_IDMAP" --root="$R" --force --json=short list
assert_contains "$(json_get "$LAST_STDOUT" '[i["name"] for i in j]')" '"fed"' "list --force"

dissect_json() {        # dissect_json PATH -> $D
        assert_ok "$SYSEXT_IDMAP" --json=short dissect "$1"
        D=$LAST_STDOUT
        assert_json_valid "$D" "dissect --json ${1##*/}"
}
part() {                # part DESIGNATOR KEY
        json_get "$D" "[p.get('$2', '<no key $2>') for p in j['partitions'] if p['designator'] == '$1']"
}

log "dissect a directory"
dissect_json "$E/dirext"
assert_eq "$(json_get "$D" 'j["name"]')" dirext "name"
assert_eq "$(json_get "$D" 'j["type"]')" directory "type"
assert_eq "$(json_get "$D" '[p["designator"] for p in j["partitions"]]')" '["root"]' "designators"
assert_eq "$(json_get "$D" 'j["extensionRelease"]["ID"]')" debian "extensionRelease.ID"
assert_eq "$(json_get "$D" 'j["extensionRelease"]["VERSION_ID"]')" 12 "extensionRelease.VERSION_ID"
assert_contains "$(json_get "$D" 'j["extensionReleasePath"]')" "extension-release.dirext" "extensionReleasePath"

for kind in sq:squashfs ero:erofs ext:ext4 foo_1.2:squashfs; do
        f=${kind%%:*}; fstype=${kind#*:}
        log "dissect a $fstype image ($f.raw)"
        dissect_json "$E/$f.raw"
        assert_eq "$(json_get "$D" 'j["name"]')" "${f%%_*}" "name"
        assert_eq "$(json_get "$D" 'j["type"]')" filesystem "type"
        assert_eq "$(json_get "$D" 'j["size"]')" "$(stat -c %s "$E/$f.raw")" "size"
        assert_eq "$(json_get "$D" '[p["designator"] for p in j["partitions"]]')" '["root"]' "designators"
        assert_eq "$(part root fstype)" "[\"$fstype\"]" "fstype"
        assert_eq "$(json_get "$D" 'j["extensionRelease"]["ID"]')" debian "extensionRelease.ID"
done

log "dissect the systemd-repart DDI"
dissect_json "$E/ddi.raw"
assert_eq "$(json_get "$D" 'j["name"]')" ddi "name"
assert_eq "$(json_get "$D" 'j["type"]')" gpt "type"
assert_eq "$(json_get "$D" 'sorted(p["designator"] for p in j["partitions"])')" \
        '["usr", "usr-verity", "usr-verity-sig"]' "designators"
assert_eq "$(json_get "$D" 'sorted(p["partno"] for p in j["partitions"])')" '[1, 2, 3]' "partition numbers"
uuid() { local h=$1; echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"; }
assert_eq "$(json_get "$D" "[p['partitionUuid'].lower() for p in j['partitions'] if p['designator'] == 'usr']")" \
        "[\"$(uuid "${ROOTHASH_DDI:0:32}")\"]" "usr partitionUuid = first half of the root hash"
assert_eq "$(json_get "$D" "[p['partitionUuid'].lower() for p in j['partitions'] if p['designator'] == 'usr-verity']")" \
        "[\"$(uuid "${ROOTHASH_DDI:32:32}")\"]" "usr-verity partitionUuid = second half of the root hash"
assert_eq "$(json_get "$D" "[p['typeUuid'].lower() for p in j['partitions'] if p['designator'] == 'usr']")" \
        "[\"$GPT_USR_X86_64\"]" "usr typeUuid"
assert_eq "$(part usr fstype)" '["squashfs"]' "usr fstype"
assert_eq "$(part usr architecture)" '["x86-64"]' "usr architecture"
assert_eq "$(part usr offset)" '[1048576]' "usr offset"
assert_eq "$(part usr label)" '["usr-x86-64"]' "usr label"
# systemd-repart 252 sets GPT bit 59 (growfs) on the data partition and bit 60 on the hash partition.
assert_contains "$(part usr flags)" growfs "usr flags"
assert_contains "$(part usr-verity flags)" read-only "usr-verity flags"
assert_eq "$(json_get "$D" 'j["extensionRelease"]["ID"]')" debian "extensionRelease.ID"
assert_eq "$(json_get "$D" 'j["size"]')" "$(stat -c %s "$E/ddi.raw")" "size"

log "dissect the DDI in text form"
assert_ok "$SYSEXT_IDMAP" dissect "$E/ddi.raw"
for w in usr usr-verity usr-verity-sig squashfs "ID=debian"; do
        assert_contains "$LAST_STDOUT" "$w" "dissect text"
done

log "dissect the sfdisk+veritysetup (unprivileged) DDI"
dissect_json "$E/ddiu.raw"
assert_eq "$(json_get "$D" 'j["type"]')" gpt "type"
assert_eq "$(json_get "$D" 'sorted(p["designator"] for p in j["partitions"])')" \
        '["usr", "usr-verity", "usr-verity-sig"]' "designators"
assert_eq "$(part usr fstype)" '["erofs"]' "usr fstype"
assert_eq "$(json_get "$D" "[p['partitionUuid'].lower() for p in j['partitions'] if p['designator'] == 'usr']")" \
        "[\"$(uuid "${ROOTHASH_DDIU:0:32}")\"]" "usr partitionUuid"
assert_contains "$(part usr flags)" read-only "usr flags"
assert_eq "$(json_get "$D" 'j["extensionRelease"]["ID"]')" debian "extensionRelease.ID"

log "list and dissect left no mounts and no loop devices behind"
assert_state_unchanged "$SCRATCH/state.before" "after list/dissect"

finish
