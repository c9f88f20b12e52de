#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Where systemd-sysext is right (issue 13 points 1-3, 9, 10): a hierarchy missing on the host gets
# its mount point; empty hierarchy directories are no layers (a hierarchy nobody has content for
# stays as it is, writable); one broken discovered image does not stop the others; refresh skips
# when nothing changed; list/status JSON carry systemd's field names. Side by side with
# systemd-sysext 252 where both behave the same and it is installed.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup
setup_merge_scratch
HAVE_SD=0
if command -v systemd-sysext >/dev/null 2>&1; then
        HAVE_SD=1
        # systemd-sysext 252 builds its overlay in a child namespace and relies on propagation.
        make_ns_shared_for_systemd_sysext
fi


# ---------------------------------------------------------------------------------------------
log "1. /opt missing on the host, an extension ships opt/"
R=$SCRATCH/r1
E=$R/var/lib/extensions
make_root "$R"
rm -rf "$R/opt"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
tree_snapshot "$R" "$SCRATCH/tree.r1"

# A failing merge (a bad image named) creates nothing.
head -c 64K /dev/urandom >"$SCRATCH/bad.raw"
assert_fail sx --root="$R" --no-reload merge "$E/a" "$SCRATCH/bad.raw"
assert_one_stderr_line bad.raw
[[ -e $R/opt ]] && fail "a failed merge created $R/opt" || pass "a failed merge created no /opt"
if has_test_hooks; then
        # The last step attaches /opt, after its mount point was made: failing there takes it away.
        last=$(SYSEXT_IDMAP_FAULT_LIST=1 sx --root="$R" --no-reload merge 2>&1 >/dev/null | awk '$1 == "fault-point" { n = $2; s = $3 } END { print n, s }')
        sx --root="$R" --no-reload unmerge 2>/dev/null || true
        rmdir "$R/opt" 2>/dev/null || true
        wait_loops_settled
        snapshot_state "$SCRATCH/state.r1"
        assert_eq "${last#* }" move_mount "last fault point"
        SYSEXT_IDMAP_FAULT=${last% *} assert_fail sx --root="$R" --no-reload merge
        assert_contains "$LAST_STDERR" "$R/opt: failed to attach the overlay" "stderr"
        [[ -e $R/opt ]] && fail "a merge failing at the attach of /opt left $R/opt" || pass "a merge failing at the attach of /opt left no /opt"
        wait_loops_settled
        assert_state_unchanged "$SCRATCH/state.r1" "merge failing at the attach of /opt"
fi

assert_ok sx --root="$R" --no-reload merge
assert_contains "$LAST_STDERR" "Merged extensions into '$R/opt'." "merge notice"
assert_mounted "$R/opt" "/opt"
assert_eq "$(stat -c %a:%u:%g "$R/opt")" 755:0:0 "mode and owner of the merged /opt"
assert_eq "$(cat "$R/opt/a/data" 2>&1)" "a data" "/opt/a/data"
assert_eq "$(cat "$R/opt/b/data" 2>&1)" "b data" "/opt/b/data"
assert_eq "$(merged_exts "$R" /opt)" a,b "/opt merged with"
assert_ok sx --root="$R" --no-reload unmerge
assert_not_mounted "$R/opt" "/opt after unmerge"
# The mount point stays, as with systemd-sysext.
assert_eq "$(stat -c %F:%a "$R/opt" 2>&1)" "directory:755" "/opt after unmerge"
assert_eq "$(ls -A "$R/opt" | wc -l)" 0 "entries in /opt after unmerge"

log "1b. under a --root whose /opt is missing, refresh creates it too; an empty host /opt is no layer"
rmdir "$R/opt" 2>/dev/null || true
old_umask=$(umask)
umask 077               # the mount point is 0755 whatever the umask, as systemd-sysext makes it
assert_ok sx --root="$R" --no-reload refresh
umask "$old_umask"
assert_mounted "$R/opt" "/opt after refresh"
assert_eq "$(cat "$R/opt/a/data" 2>&1)" "a data" "/opt/a/data after refresh"
assert_ok sx --root="$R" --no-reload unmerge
assert_eq "$(stat -c %a:%u:%g "$R/opt")" 755:0:0 "the /opt refresh made under umask 077, unmerged"
# Now /opt exists, empty: merged again, it is left out of the layers (nothing to see either way).
assert_ok sx --root="$R" --no-reload merge
assert_eq "$(ls -A "$R/opt" | sort | paste -sd,)" ".systemd-sysext,a,b" "entries of the merged /opt"
assert_ok sx --root="$R" --no-reload unmerge

if ((HAVE_SD)); then
        log "1c. systemd-sysext 252 does the same: /opt created, merged, kept after unmerge"
        rmdir "$R/opt" 2>/dev/null || true
        assert_ok systemd-sysext --root="$R" merge
        assert_mounted "$R/opt" "/opt (systemd-sysext)"
        assert_eq "$(cat "$R/opt/.systemd-sysext/extensions" 2>&1 | paste -sd,)" a,b "/opt markers (systemd-sysext)"
        assert_ok systemd-sysext --root="$R" unmerge
        assert_eq "$(stat -c %F:%a "$R/opt" 2>&1)" "directory:755" "/opt after systemd-sysext unmerge"
fi

# ---------------------------------------------------------------------------------------------
log "2. an extension whose opt/ is empty is no layer of /opt; the host /opt stays writable"
R=$SCRATCH/r2
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/e" e
rm -rf "$E/e/opt/e"                     # opt/ stays, empty
assert_ok sx --root="$R" --no-reload merge
assert_contains "$LAST_STDERR" "Merged extensions into '$R/usr'." "merge notice"
assert_not_contains "$LAST_STDERR" "Merged extensions into '$R/opt'" "merge notice"
assert_not_mounted "$R/opt" "/opt"
if touch "$R/opt/writable" 2>/dev/null; then pass "host /opt still writable"; else fail "host /opt is not writable"; fi
rm -f "$R/opt/writable"
assert_eq "$(merged_exts "$R" /usr)" e "/usr merged with"
assert_ok sx --root="$R" --no-reload unmerge
if ((HAVE_SD)); then
        assert_ok systemd-sysext --root="$R" merge
        assert_not_mounted "$R/opt" "/opt (systemd-sysext)"
        assert_ok systemd-sysext --root="$R" unmerge
fi

log "2b. a hidden file is content; the /opt markers list every extension (as systemd-sysext)"
make_ext_dir "$E/h" h
rm -rf "$E/h/opt/h"
echo hidden >"$E/h/opt/.hidden"
assert_ok sx --root="$R" --no-reload merge
assert_mounted "$R/opt" "/opt with a hidden file in h"
assert_eq "$(cat "$R/opt/.hidden" 2>&1)" hidden "/opt/.hidden"
assert_eq "$(paste -sd, "$R/opt/.systemd-sysext/extensions")" e,h "/opt/.systemd-sysext/extensions"
J=$(status_json "$R")
assert_eq "$(json_get "$J" "[l['name'] for h in j if h['hierarchy'] == '/opt' for l in h['layers']]")" '["h"]' "/opt layers"
if ((HAVE_SD)); then
        assert_ok sx --root="$R" --no-reload unmerge
        assert_ok systemd-sysext --root="$R" merge
        assert_eq "$(paste -sd, "$R/opt/.systemd-sysext/extensions")" e,h "/opt markers (systemd-sysext)"
        assert_ok systemd-sysext --root="$R" unmerge
        assert_ok sx --root="$R" --no-reload merge
fi

log "2c. refresh after the last content of /opt went away unmerges /opt"
rm -rf "$E/h/opt"
assert_ok sx --root="$R" --no-reload refresh
assert_contains "$LAST_STDERR" "Unmerged '$R/opt'." "refresh notice"
assert_not_mounted "$R/opt" "/opt after the refresh"
assert_mounted "$R/usr" "/usr after the refresh"
if touch "$R/opt/writable" 2>/dev/null; then pass "host /opt writable again"; else fail "host /opt is not writable"; fi
rm -f "$R/opt/writable"
assert_ok sx --root="$R" --no-reload unmerge

# ---------------------------------------------------------------------------------------------
log "3. broken discovered images are skipped, the good ones merged"
R=$SCRATCH/r3
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
head -c 1M /dev/urandom >"$E/corrupt.raw"
make_ext_dir "$E/norel" norel
rm "$E/norel/usr/lib/extension-release.d/extension-release.norel"
make_ext_dir "$E/fedora" fedora ID=fedora VERSION_ID=39
mkfifo "$E/fifo.raw"    # named like an image, but no file: skipped without being opened
# One refused by the image policy: a DDI with a usr partition where the policy allows none.
SKIPPED='"corrupt", "fedora", "fifo", "norel"'
POLICY=()
if command -v veritysetup >/dev/null && command -v sfdisk >/dev/null && command -v mkfs.erofs >/dev/null; then
        make_ext_ddi_unpriv "$E/ddi.raw" ddi
        SKIPPED='"corrupt", "ddi", "fedora", "fifo", "norel"'
        POLICY=(--image-policy=root=unprotected+absent:usr=absent)
else
        log "no veritysetup/sfdisk/mkfs.erofs: no image refused by the policy"
fi
wait_loops_settled
snapshot_state "$SCRATCH/state.r3"
tree_snapshot "$R" "$SCRATCH/tree.r3"

log "3a. named, a bad image is still an error (and nothing changes)"
assert_fail sx --root="$R" --no-reload merge "$E/a" "$E/corrupt.raw"
assert_eq "$LAST_RC" 1 "exit status"
assert_one_stderr_line corrupt.raw
assert_fail sx --root="$R" --no-reload merge "$E/a" "$E/fedora"
assert_one_stderr_line "not compatible"
wait_loops_settled
assert_state_unchanged "$SCRATCH/state.r3" "named bad images"
assert_tree_unchanged "$R" "$SCRATCH/tree.r3" "named bad images"

log "3b. discovered: one notice each, the rest merged, exit 0"
assert_ok sx --root="$R" --no-reload "${POLICY[@]}" merge
assert_contains "$LAST_STDERR" "Skipping extension 'corrupt': $E/corrupt.raw" "notice for the corrupt image"
assert_contains "$LAST_STDERR" "Skipping extension 'norel': $E/norel" "notice for the image without extension-release"
assert_contains "$LAST_STDERR" "Extension 'fedora' is not compatible with this host" "notice for the incompatible image"
((${#POLICY[@]})) && assert_contains "$LAST_STDERR" "Skipping extension 'ddi': $E/ddi.raw: refused by the image policy" "notice for the refused image"
assert_eq "$(grep -c corrupt <<<"$LAST_STDERR")" 1 "lines naming corrupt"
assert_contains "$LAST_STDERR" "Skipping extension 'fifo': $E/fifo.raw: not a directory, regular file or block device" "notice for the FIFO"
assert_contains "$LAST_STDERR" "Using extensions 'a', 'b'." "merge notice"
assert_eq "$(merged_exts "$R" /usr)" a,b "/usr merged with"
assert_eq "$("$R/usr/bin/b-hello" 2>&1)" "hello from b" "b-hello runs"

log "3c. status shows what was skipped and why"
J=$(status_json "$R")
U="[h for h in j if h['hierarchy'] == '/usr'][0]"
assert_eq "$(json_get "$J" "sorted(k['name'] for k in $U['skipped'])")" "[$SKIPPED]" "status: skipped"
assert_contains "$(json_get "$J" "[k['reason'] for k in $U['skipped'] if k['name'] == 'corrupt'][0]")" "$E/corrupt.raw" "status: reason for corrupt"
assert_contains "$(json_get "$J" "[k['reason'] for k in $U['skipped'] if k['name'] == 'norel'][0]")" "extension-release" "status: reason for norel"
assert_contains "$(json_get "$J" "[k['reason'] for k in $U['skipped'] if k['name'] == 'fedora'][0]")" "fedora" "status: reason for fedora"
assert_eq "$(json_get "$J" "[k['path'] for k in $U['skipped'] if k['name'] == 'corrupt'][0]")" "$E/corrupt.raw" "status: path of corrupt"
assert_ok sx --root="$R" status
assert_contains "$LAST_STDOUT" "Skipped: corrupt (" "status text"

log "3d. list --json: skipped entries with reasons, systemd's fields (name, type, path, time)"
assert_ok sx --root="$R" "${POLICY[@]}" --json=short list
L=$LAST_STDOUT
assert_eq "$(json_get "$L" "sorted(e['name'] for e in j if e['skipped'])")" "[$SKIPPED]" "list: skipped"
assert_eq "$(json_get "$L" "sorted(e['name'] for e in j if not e['skipped'])")" '["a", "b"]' "list: not skipped"
assert_contains "$(json_get "$L" "[e['reason'] for e in j if e['name'] == 'corrupt'][0]")" corrupt.raw "list: reason for corrupt"
assert_eq "$(json_get "$L" "all(set(('name', 'type', 'path', 'time')) <= set(e) for e in j)")" true "list: systemd's fields"
assert_eq "$(json_get "$L" "[e['type'] for e in j if e['name'] == 'b'][0]")" raw "list: type of b"
assert_eq "$(json_get "$L" "[e['time'] for e in j if e['name'] == 'b'][0]")" "$(stat -c %.6Y "$E/b.raw" | tr -d .)" "list: time of b (mtime, µs)"
J=$(status_json "$R")
assert_eq "$(json_get "$J" "all(set(('hierarchy', 'extensions', 'since')) <= set(h) for h in j)")" true "status: systemd's fields"
assert_ok sx --root="$R" --no-reload unmerge

log "3e. all discovered images broken: exit 1, nothing changes"
R=$SCRATCH/r3e
E=$R/var/lib/extensions
make_root "$R"
head -c 1M /dev/urandom >"$E/corrupt.raw"
wait_loops_settled
snapshot_state "$SCRATCH/state.r3e"
assert_fail sx --root="$R" --no-reload merge
assert_eq "$LAST_RC" 1 "exit status"
assert_contains "$LAST_STDERR" "Skipping extension 'corrupt'" "notice"
assert_contains "$LAST_STDERR" "No extensions merged: 1 discovered image could not be used." "error"
wait_loops_settled
assert_state_unchanged "$SCRATCH/state.r3e" "all broken"
if ((HAVE_SD)); then
        # systemd-sysext 252 fails on the broken image too (and on the others: systemd#32762).
        assert_fail systemd-sysext --root="$R" merge
fi

# ---------------------------------------------------------------------------------------------
log "9. refresh skips when nothing changed"
R=$SCRATCH/r9
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
assert_ok sx --root="$R" --no-reload merge
dev=$(marker_dev "$R/usr")
assert_ok sx --root="$R" --no-reload refresh
assert_contains "$LAST_STDERR" "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh." "refresh notice"
assert_eq "$(marker_dev "$R/usr")" "$dev" "/usr overlay after a skipped refresh"

assert_not_contains "$LAST_STDERR" "Using extensions" "the quick check opened no image"

log "9f. the quick check sees the host's os-release, a hierarchy unmerged by hand, a new sidecar"
# (/usr is merged, read-only: etc/os-release, which comes first, becomes a file of its own)
sed 's/^VERSION_ID=12$/VERSION_ID=13/' "$R/usr/lib/os-release" >"$SCRATCH/os-release.13"
rm "$R/etc/os-release" && cp "$SCRATCH/os-release.13" "$R/etc/os-release"
assert_ok sx --root="$R" --no-reload refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh after the host's VERSION_ID changed"
assert_contains "$LAST_STDERR" "not compatible" "refresh checks compatibility again"
ln -sf ../usr/lib/os-release "$R/etc/os-release"
assert_ok sx --root="$R" --no-reload refresh
assert_eq "$(merged_exts "$R" /usr)" a,b "merged again with the old VERSION_ID"
umount -l "$R/opt"
assert_ok sx --root="$R" --no-reload refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh with /opt unmerged by hand"
[[ -n $(marker_dev "$R/opt") ]] && pass "/opt merged again" || fail "/opt not merged again"
echo 0000 >"$E/b.roothash"
assert_ok sx --root="$R" --no-reload refresh
assert_contains "$LAST_STDERR" "Skipping extension 'b'" "a new (bogus) sidecar is noticed"
rm -f "$E/b.roothash"
assert_ok sx --root="$R" --no-reload refresh
assert_ok sx --root="$R" --no-reload refresh
assert_contains "$LAST_STDERR" "Skipping" "skipped again"
dev=$(marker_dev "$R/usr")

log "9a. --always-refresh refreshes anyway; --always-refresh=no does not"
assert_ok sx --root="$R" --no-reload --always-refresh refresh
assert_contains "$LAST_STDERR" "No change found based on origin entry but continuing as requested by --always-refresh=yes." "refresh notice"
assert_contains "$LAST_STDERR" "Refreshed '$R/usr'" "refresh notice"
[[ $(marker_dev "$R/usr") != "$dev" ]] && pass "new overlay after --always-refresh" || fail "same overlay after --always-refresh"
dev=$(marker_dev "$R/usr")
assert_ok sx --root="$R" --no-reload --always-refresh=no refresh
assert_contains "$LAST_STDERR" "Skipping extension refresh" "--always-refresh=no"
assert_ok sx --root="$R" --no-reload --always-refresh=yes refresh
assert_contains "$LAST_STDERR" "continuing as requested" "--always-refresh=yes"
assert_fail sx --root="$R" --no-reload --always-refresh=maybe refresh
assert_one_stderr_line "always-refresh"

log "9b. an image replaced under the same name is a change"
mkdir -p "$SCRATCH/b2src/usr/share" && echo v2 >"$SCRATCH/b2src/usr/share/b-version"
make_ext_tree "$SCRATCH/b2src" b
mksquashfs "$SCRATCH/b2src" "$SCRATCH/b2.raw" -noappend -quiet -no-progress -all-root >/dev/null
mv -f "$SCRATCH/b2.raw" "$E/b.raw"
dev=$(marker_dev "$R/usr")
assert_ok sx --root="$R" --no-reload refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh after replacing b.raw"
assert_eq "$(cat "$R/usr/share/b-version" 2>&1)" v2 "the new b is merged"
assert_ok sx --root="$R" --no-reload refresh
assert_contains "$LAST_STDERR" "Skipping" "refresh right after"

log "9c. a new image, a removed image, a changed --idmap are changes"
make_ext_squashfs "$E/c.raw" c
assert_ok sx --root="$R" --no-reload refresh
assert_eq "$(merged_exts "$R" /usr)" a,b,c "after adding c"
rm "$E/c.raw"
assert_ok sx --root="$R" --no-reload refresh
assert_eq "$(merged_exts "$R" /usr)" a,b "after removing c"
assert_ok sx --root="$R" --no-reload --idmap=b:0:0:1 refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh with another --idmap"
assert_eq "$(json_get "$(status_json "$R")" "j[0]['idmap']")" b:0:0:1 "idmap after the refresh"
assert_ok sx --root="$R" --no-reload --idmap=b:0:0:1 refresh
assert_contains "$LAST_STDERR" "Skipping" "refresh with the same --idmap"
assert_ok sx --root="$R" --no-reload refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh back to identity"

log "9d. another set of hierarchies is a change; a merge by systemd-sysext is always refreshed"
SYSTEMD_SYSEXT_HIERARCHIES=/usr assert_ok sx --root="$R" --no-reload refresh
assert_not_contains "$LAST_STDERR" "Skipping" "refresh with SYSTEMD_SYSEXT_HIERARCHIES=/usr"
assert_ok sx --root="$R" --no-reload unmerge
if ((HAVE_SD)); then
        assert_ok systemd-sysext --root="$R" merge
        assert_ok sx --root="$R" --no-reload refresh
        assert_not_contains "$LAST_STDERR" "Skipping" "refresh of a systemd-sysext merge"
        assert_eq "$(json_get "$(status_json "$R")" "j[0]['mergedBy']")" sysext-idmap "merged by after the refresh"
fi
assert_ok sx --root="$R" --no-reload unmerge

if command -v veritysetup >/dev/null && command -v sfdisk >/dev/null && command -v mkfs.erofs >/dev/null; then
        log "9e. with a verity root hash, the hash is the identity: a copy is no change, other bytes are"
        rm -rf "$E"/*
        make_ext_ddi_unpriv "$E/v.raw" v
        echo "$DDI_ROOTHASH" >"$E/v.usrhash"
        assert_ok sx --root="$R" --no-reload --verity=userspace merge
        assert_eq "$(json_get "$(status_json "$R")" "j[0]['layers'][0]['rootHash']")" "$DDI_ROOTHASH" "root hash of v"
        cp "$E/v.raw" "$SCRATCH/v-copy.raw" && mv -f "$SCRATCH/v-copy.raw" "$E/v.raw"
        assert_ok sx --root="$R" --no-reload --verity=userspace refresh
        assert_contains "$LAST_STDERR" "Skipping extension refresh" "refresh after copying v.raw over itself"
        make_ext_ddi_unpriv "$E/v.raw" v VERSION_ID=12 ID=debian SYSEXT_SCOPE=system
        echo "$DDI_ROOTHASH" >"$E/v.usrhash"
        assert_ok sx --root="$R" --no-reload --verity=userspace refresh
        assert_not_contains "$LAST_STDERR" "Skipping" "refresh after rebuilding v.raw with another root hash"
        assert_eq "$(json_get "$(status_json "$R")" "j[0]['layers'][0]['rootHash']")" "$DDI_ROOTHASH" "root hash of the new v"
        assert_ok sx --root="$R" --no-reload unmerge
else
        log "no veritysetup/sfdisk/mkfs.erofs: root hash identity not checked"
fi
assert_no_scratch_loops "at the end"

finish
