#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# merge / status / unmerge over a scratch root: directory, squashfs, erofs and (when
# systemd-repart works) GPT DDI extensions whose files belong to uid 1000, idmapped to root.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
# The host's own copy of a file that extensions also ship: it must end up at the bottom.
mkdir -p "$R/usr/share/same"
echo host >"$R/usr/share/same/file"
echo host >"$R/usr/share/same/hostonly"

export EXT_UID=1000
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
make_ext_erofs "$E/c.raw" c
EXPECT=(a b c)
HAVE_DDI=0
if command -v systemd-repart >/dev/null && make_ext_ddi "$E/d.raw" d 2>"$SCRATCH/repart.err"; then
        HAVE_DDI=1
        EXPECT+=(d)
        log "systemd-repart built a DDI extension (usr squashfs + verity), merging it too"
else
        log "systemd-repart cannot build a DDI here, merging without one: $(head -n 1 "$SCRATCH/repart.err" 2>/dev/null)"
fi
# Two extensions shipping the same file. Version order puts zz10 after zz2 (strcmp would not).
for n in zz2 zz10; do
        make_ext_dir "$E/$n" "$n"
        mkdir -p "$E/$n/usr/share/same"
        echo "$n" >"$E/$n/usr/share/same/file"
        chown_tree "$E/$n" 1000
done
unset EXT_UID
EXPECT+=(zz2 zz10)
want_list=$(printf '%s\n' "${EXPECT[@]}")

wait_loops_settled
snapshot_state "$SCRATCH/state.before"
tree_snapshot "$R" "$SCRATCH/tree.before"

log "merge with --idmap=b:1000:0:1"
assert_ok sx --root="$R" --idmap=b:1000:0:1 --no-reload merge
assert_contains "$LAST_STDERR" "Using extensions '$(printf "%s', '" "${EXPECT[@]}" | sed "s/, '\$//")." "merge notice"
assert_contains "$LAST_STDERR" "Merged extensions into '$R/usr'." "merge notice"
assert_contains "$LAST_STDERR" "Merged extensions into '$R/opt'." "merge notice"

log "ownership through the merge vs on disk"
assert_owner "$R/usr/bin/a-hello" 0:0 "a-hello (dir) through the merge"
assert_owner "$R/usr/bin/b-hello" 0:0 "b-hello (squashfs) through the merge"
assert_owner "$R/usr/bin/c-hello" 0:0 "c-hello (erofs) through the merge"
((HAVE_DDI)) && assert_owner "$R/usr/bin/d-hello" 0:0 "d-hello (DDI) through the merge"
assert_owner "$R/usr/lib/extension-release.d/extension-release.a" 0:0 "extension-release.a through the merge"
assert_owner "$E/a/usr/bin/a-hello" 1000:1000 "a-hello on disk"
assert_owner "$R/usr/bin/base-marker" 0:0 "host file through the merge"

log "a binary from each extension runs"
for n in "${EXPECT[@]}"; do
        assert_eq "$("$R/usr/bin/$n-hello" 2>&1)" "hello from $n" "output of $n-hello"
done
assert_eq "$("$R/usr/bin/base-marker" 2>&1)" "base-os" "output of the host's base-marker"

log "/opt is merged too"
for n in a b c; do
        assert_eq "$(cat "$R/opt/$n/data" 2>&1)" "$n data" "/opt/$n/data"
        assert_owner "$R/opt/$n/data" 0:0 "/opt/$n/data"
done
assert_eq "$(cat "$R/opt/base/data" 2>&1)" "base" "host's /opt/base/data"

log "layer order"
assert_eq "$(cat "$R/usr/share/same/file")" "zz10" "file shipped by zz2 and zz10 (version order: zz10 last, on top)"
assert_eq "$(cat "$R/usr/share/same/hostonly")" "host" "host-only file below the extensions"

log "markers"
assert_eq "$(cat "$R/usr/.systemd-sysext/extensions")" "$want_list" "/usr/.systemd-sysext/extensions"
assert_eq "$(tail -c 1 "$R/usr/.systemd-sysext/extensions" | od -An -c | tr -d ' ')" '\n' "extensions ends with a newline"
assert_eq "$(cat "$R/usr/.systemd-sysext/dev")" "$(stat -c '%Hd:%Ld' "$R/usr")" "/usr/.systemd-sysext/dev (maj:min)"
assert_eq "$(od -An -c "$R/usr/.systemd-sysext/dev" | tr -d ' ' | tail -c 3)" '\n' "dev ends with a newline like systemd's"
assert_eq "$(cat "$R/opt/.systemd-sysext/dev")" "$(stat -c '%Hd:%Ld' "$R/opt")" "/opt/.systemd-sysext/dev"
# The DDI only has a usr partition, so it is no layer of /opt, but as with systemd-sysext every
# hierarchy's marker lists all extensions of the merge.
assert_eq "$(cat "$R/opt/.systemd-sysext/extensions")" "$want_list" "/opt/.systemd-sysext/extensions"
assert_json_valid "$(cat "$R/usr/.systemd-sysext/sysext-idmap.json")" "sysext-idmap.json"

log "status (text)"
assert_ok sx --root="$R" status
assert_contains "$LAST_STDOUT" "HIERARCHY" "status"
assert_contains "$LAST_STDOUT" "$(IFS=,; echo "${EXPECT[*]}" | sed 's/,/, /g')" "status /usr line"
assert_contains "$LAST_STDOUT" "b:1000:0:1" "status"

log "status --json"
assert_ok sx --root="$R" --json=short status
J=$LAST_STDOUT
assert_json_valid "$J" "status --json"
U="[h for h in j if h['hierarchy'] == '/usr'][0]"
O="[h for h in j if h['hierarchy'] == '/opt'][0]"
assert_eq "$(json_get "$J" "$U['merged']")" true "/usr merged"
assert_eq "$(json_get "$J" "$U['path']")" "$R/usr" "/usr path"
assert_eq "$(json_get "$J" "','.join($U['extensions'])")" "$(IFS=,; echo "${EXPECT[*]}")" "/usr extensions"
assert_eq "$(json_get "$J" "$U['idmap']")" "b:1000:0:1" "/usr idmap"
assert_eq "$(json_get "$J" "$U['mergedBy']")" "sysext-idmap" "/usr mergedBy"
assert_eq "$(json_get "$J" "$U['device']")" "$(stat -c '%Hd:%Ld' "$R/usr")" "/usr device"
assert_eq "$(json_get "$J" "isinstance($U['since'], int) and $U['since'] > 0")" true "/usr since is a timestamp"
assert_eq "$(json_get "$J" "','.join(l['name'] for l in $U['layers'])")" "$(IFS=,; echo "${EXPECT[*]}")" "/usr layer names"
assert_eq "$(json_get "$J" "[l['type'] for l in $U['layers'] if l['name'] in ('a', 'b')]")" '["directory", "filesystem"]' "layer types of a and b"
assert_eq "$(json_get "$J" "[l['path'] for l in $U['layers'] if l['name'] == 'b'][0]")" "$E/b.raw" "layer path of b"
assert_eq "$(json_get "$J" "sorted(set(l['idmap'] for l in $U['layers']))")" '["b:1000:0:1"]' "every layer's idmap"
assert_eq "$(json_get "$J" "$O['merged']")" true "/opt merged"

log "merge twice"
assert_fail sx --root="$R" --no-reload merge
assert_eq "$LAST_RC" 1 "exit code of a second merge"
assert_one_stderr_line "Hierarchy '/usr' is already merged."

log "unmerge while a file of the overlay is held open"
exec 3<"$R/usr/bin/b-hello"
exec 4<"$R/opt/c/data"
assert_ok sx --root="$R" --no-reload unmerge
assert_contains "$LAST_STDERR" "Unmerged '$R/usr'." "unmerge notice"
assert_contains "$LAST_STDERR" "Unmerged '$R/opt'." "unmerge notice"
assert_contains "$(cat <&3)" "hello from b" "held-open fd of b-hello after unmerge"
assert_eq "$(cat <&4)" "c data" "held-open fd of /opt/c/data after unmerge"
if [[ -e $R/usr/bin/b-hello ]]; then fail "b-hello still visible after unmerge"; else pass "b-hello gone after unmerge"; fi
exec 3<&- 4<&-
assert_ok sx --root="$R" --no-reload unmerge
assert_eq "$LAST_STDERR" "" "stderr of unmerge when nothing is merged"
assert_no_scratch_loops "after unmerge"
assert_state_unchanged "$SCRATCH/state.before" "after merge + unmerge"
assert_tree_unchanged "$R" "$SCRATCH/tree.before" "after merge + unmerge"

log "merge IMAGE... merges only the named images"
assert_ok sx --root="$R" --no-reload merge "$E/a" "$E/c.raw"
assert_contains "$LAST_STDERR" "Using extensions 'a', 'c'." "explicit merge notice"
assert_eq "$(cat "$R/usr/.systemd-sysext/extensions" 2>&1)" "$(printf 'a\nc')" "extensions marker of explicit merge"
if [[ -e $R/usr/bin/b-hello ]]; then fail "b-hello visible in an explicit a+c merge"; else pass "b-hello not merged"; fi
assert_owner "$R/usr/bin/a-hello" 1000:1000 "a-hello with the default identity idmap"
assert_ok sx --root="$R" --no-reload unmerge

log "an image without /opt leaves /opt unmerged"
E2=$SCRATCH/noopt
EXT_UID=1000 make_ext_dir "$E2" noopt
rm -rf "$E2/opt"
assert_ok sx --root="$R" --no-reload merge "$E2"
assert_eq "$(merged_exts "$R" /usr)" noopt "/usr merged with"
assert_eq "$(merged_exts "$R" /opt)" - "/opt merged with"
if grep -q " $R/opt " /proc/self/mountinfo; then fail "/opt has a mount"; else pass "no mount on /opt"; fi
assert_ok sx --root="$R" --no-reload unmerge
assert_state_unchanged "$SCRATCH/state.before" "after the /opt-less merge + unmerge"

if has_test_hooks; then
        log "fallback: SYSEXT_IDMAP_FORCE_PATH_LAYERS=1"
        SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 assert_ok sx --root="$R" --idmap=b:1000:0:1 --no-reload merge
        mi=$(awk -v p="$R/usr" '$5 == p' /proc/self/mountinfo)
        assert_contains "$mi" "lowerdir=" "mountinfo of the fallback /usr overlay"
        assert_not_contains "$mi" "lowerdir+" "mountinfo of the fallback /usr overlay"
        assert_owner "$R/usr/bin/c-hello" 0:0 "c-hello through the fallback merge"
        assert_eq "$("$R/usr/bin/a-hello" 2>&1)" "hello from a" "a-hello through the fallback merge"
        assert_eq "$(cat "$R/usr/share/same/file")" "zz10" "layer order in the fallback merge"
        assert_eq "$(cat "$R/usr/.systemd-sysext/dev")" "$(stat -c '%Hd:%Ld' "$R/usr")" "dev marker in the fallback merge"
        staged=$(grep -c staging /proc/self/mountinfo || true)
        assert_eq "$staged" 0 "mounts named *staging* in our namespace"
        assert_ok sx --root="$R" --no-reload unmerge
        assert_no_scratch_loops "after the fallback unmerge"
        assert_state_unchanged "$SCRATCH/state.before" "after the fallback merge + unmerge"
else
        log "fallback (SYSEXT_IDMAP_FORCE_PATH_LAYERS=1): skipped, the binary has no test hooks"
fi

log "fd-layer merge shows lowerdir+ (the normal path)"
assert_ok sx --root="$R" --no-reload merge
assert_contains "$(awk -v p="$R/usr" '$5 == p' /proc/self/mountinfo)" "lowerdir+" "mountinfo of the fd-layer overlay"
assert_ok sx --root="$R" --no-reload unmerge
assert_state_unchanged "$SCRATCH/state.before" "at the end"

finish
