#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Interoperability with systemd-sysext 252: either tool recognises and removes the other's merge
# (same markers in .systemd-sysext/), and neither merges on top of the other.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs losetup systemd-sysext
setup_merge_scratch
# systemd-sysext 252 builds its overlay in a child namespace and relies on propagation (VM-NOTES §5).
make_ns_shared_for_systemd_sysext

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b

# 252 has no --no-reload; with --root it does not reload anything anyway.
SD=(systemd-sysext --root="$R")

# Everything systemd-sysext itself mounts lives below /run/systemd/sysext in its child namespace;
# compare our mount table below the root and the scratch loop devices only.
wait_loops_settled
snapshot_state "$SCRATCH/state.before"

log "our merge, unmerged by systemd-sysext"
assert_ok sx --root="$R" --no-reload merge
assert_eq "$(merged_exts "$R" /usr)" a,b "/usr merged by us"
assert_ok "${SD[@]}" unmerge
if [[ -z $(mounts_below "$R") ]]; then pass "no mounts below the root after systemd-sysext unmerge"; else fail "mounts remain: $(mounts_below "$R")"; fi
assert_no_scratch_loops "after systemd-sysext unmerge"
assert_state_unchanged "$SCRATCH/state.before" "our merge + systemd-sysext unmerge"

log "our idmapped merge, refused by systemd-sysext merge, unmerged by systemd-sysext"
chown_tree "$E/a" 1000
assert_ok sx --root="$R" --idmap=b:1000:0:1 --no-reload merge "$E/a"
assert_owner "$R/usr/bin/a-hello" 0:0 "a-hello idmapped"
assert_fail "${SD[@]}" merge
assert_contains "$LAST_STDERR" "already merged" "systemd-sysext merge on our merge"
assert_eq "$(merged_exts "$R" /usr)" a "/usr still merged by us"
assert_ok "${SD[@]}" unmerge
chown_tree "$E/a" 0
assert_no_scratch_loops "after systemd-sysext unmerge"
assert_state_unchanged "$SCRATCH/state.before" "idmapped merge + systemd-sysext unmerge"

log "systemd-sysext merge, seen by our status"
assert_ok "${SD[@]}" merge
if [[ $(cat "$R/usr/.systemd-sysext/extensions" 2>/dev/null) != *a* ]]; then
        fail "systemd-sysext merge is not visible (is / shared?): $LAST_STDERR"
fi
J=$(status_json "$R")
U="[h for h in j if h['hierarchy'] == '/usr'][0]"
assert_eq "$(json_get "$J" "$U['merged']")" true "/usr merged"
assert_eq "$(json_get "$J" "$U['mergedBy']")" systemd-sysext "/usr mergedBy"
assert_eq "$(json_get "$J" "','.join($U['extensions'])")" "$(paste -sd, "$R/usr/.systemd-sysext/extensions")" "/usr extensions (systemd's marker)"
assert_eq "$(json_get "$J" "sorted($U['extensions'])")" '["a", "b"]' "/usr extension names"
assert_eq "$(json_get "$J" "$U['device']")" "$(stat -c '%Hd:%Ld' "$R/usr")" "/usr device"
assert_eq "$(json_get "$J" "$U['layers']")" "[]" "/usr layers (unknown for a systemd-sysext merge)"
assert_ok sx --root="$R" status
assert_contains "$LAST_STDOUT" "a, b" "status text"
# systemd's dev marker has the same format as ours
assert_eq "$(cat "$R/usr/.systemd-sysext/dev")" "$(stat -c '%Hd:%Ld' "$R/usr")" "systemd-sysext's dev marker is maj:min"

log "our merge after theirs refuses"
snapshot_state "$SCRATCH/state.theirs"
assert_fail sx --root="$R" --no-reload merge
assert_eq "$LAST_RC" 1 "exit code"
assert_one_stderr_line "Hierarchy '/usr' is already merged."
assert_state_unchanged "$SCRATCH/state.theirs" "refused merge"

log "our unmerge removes theirs"
assert_ok sx --root="$R" --no-reload unmerge
assert_contains "$LAST_STDERR" "Unmerged '$R/usr'." "unmerge notice"
assert_eq "$(merged_exts "$R" /usr)" - "/usr after our unmerge"
assert_no_scratch_loops "after our unmerge of theirs"
assert_state_unchanged "$SCRATCH/state.before" "systemd-sysext merge + our unmerge"

log "our refresh replaces theirs"
assert_ok "${SD[@]}" merge
chown_tree "$E/a" 1000
assert_ok sx --root="$R" --idmap=b:1000:0:1 --no-reload refresh
assert_contains "$LAST_STDERR" "Refreshed '$R/usr' atomically." "refresh notice"
J=$(status_json "$R")
assert_eq "$(json_get "$J" "$U['mergedBy']")" sysext-idmap "/usr mergedBy after our refresh"
assert_eq "$(json_get "$J" "$U['idmap']")" b:1000:0:1 "/usr idmap after our refresh"
assert_eq "$(awk -v p="$R/usr" '$5 == p' /proc/self/mountinfo | wc -l)" 1 "mounts on /usr (theirs is gone)"
assert_owner "$R/usr/bin/a-hello" 0:0 "a-hello idmapped after our refresh"
assert_eq "$("$R/usr/bin/b-hello" 2>&1)" "hello from b" "b-hello runs"

log "systemd-sysext refresh replaces ours"
chown_tree "$E/a" 0
assert_ok "${SD[@]}" refresh
J=$(status_json "$R")
assert_eq "$(json_get "$J" "$U['mergedBy']")" systemd-sysext "/usr mergedBy after systemd-sysext refresh"
assert_eq "$(awk -v p="$R/usr" '$5 == p' /proc/self/mountinfo | wc -l)" 1 "mounts on /usr (ours is gone)"
assert_ok "${SD[@]}" unmerge
assert_no_scratch_loops "at the end"
assert_state_unchanged "$SCRATCH/state.before" "at the end"

finish
