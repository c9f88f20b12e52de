#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Concurrency: 8 workers run merge/unmerge/refresh/status in random order against one root for
# a bounded time, while a background loop adds and removes an image. Afterwards: exit codes only 0
# or 1, no message that is not one of the expected ones (no crash, abort or assertion), a
# consistent final state that status agrees with, and after a final unmerge no mounts, no loop
# devices and no sysext-idmap process left.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup timeout
setup_merge_scratch

DURATION=${CONCURRENCY_SECONDS:-30}
WORKERS=8
R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
make_ext_erofs "$E/c.raw" c
make_ext_squashfs "$SCRATCH/x.raw" x
LOGDIR=$SCRATCH/logs
mkdir -p "$LOGDIR"

# The image that comes and goes: copied in under a temporary name and renamed (as an update
# would), or removed.
churn() {
        local end=$1
        while ((SECONDS < end)); do
                cp "$SCRATCH/x.raw" "$E/.x.raw.tmp" && mv -f "$E/.x.raw.tmp" "$E/x.raw"
                sleep 0.$((RANDOM % 5))
                rm -f "$E/x.raw"
                sleep 0.$((RANDOM % 5))
        done
}

worker() {
        local id=$1 end=$2 n=0 op rc
        while ((SECONDS < end)); do
                case $((RANDOM % 4)) in
                0) op=merge ;;
                1) op=unmerge ;;
                2) op=refresh ;;
                3) op=status ;;
                esac
                rc=0
                timeout 30 "$SYSEXT_IDMAP" --root="$R" --no-reload "$op" >/dev/null 2>"$LOGDIR/$id.$n.err" || rc=$?
                echo "$op $rc" >>"$LOGDIR/$id.rc"
                sed "s/^/$op: /" "$LOGDIR/$id.$n.err" >>"$LOGDIR/$id.msgs"
                rm -f "$LOGDIR/$id.$n.err"
                n=$((n + 1))
        done
}

log "$WORKERS workers for ${DURATION}s, x.raw coming and going"
end=$((SECONDS + DURATION))
churn "$end" &
BG_PIDS=$!
pids=()
for i in $(seq 1 "$WORKERS"); do
        worker "$i" "$end" &
        pids+=($!)
done
BG_PIDS="$BG_PIDS ${pids[*]}"
for p in "${pids[@]}"; do
        wait "$p"
done
wait
BG_PIDS=
rm -f "$E/.x.raw.tmp"

ops=$(cat "$LOGDIR"/*.rc | wc -l)
log "operations: $ops"
((ops >= WORKERS)) && pass "ran $ops operations" || fail "only $ops operations ran"
for op in merge unmerge refresh status; do
        log "  $op: $(awk -v o=$op '$1 == o' "$LOGDIR"/*.rc | wc -l) runs, $(awk -v o=$op '$1 == o && $2 == 0' "$LOGDIR"/*.rc | wc -l) succeeded"
done

bad_rc=$(awk '$2 != 0 && $2 != 1' "$LOGDIR"/*.rc | sort | uniq -c)
if [[ -z $bad_rc ]]; then
        pass "every exit code is 0 or 1"
else
        fail "unexpected exit codes (124 = timeout, >128 = signal):"
        sed 's/^/    /' <<<"$bad_rc"
fi

# Messages a racing operation may legitimately print. Anything else is reported.
cat "$LOGDIR"/*.msgs >"$SCRATCH/all.msgs" || true
if grep -Eiq 'segmentation|aborted|assert|core dumped|double free|corrupted|stack smashing|sanitizer|helper process .*died' "$SCRATCH/all.msgs"; then
        fail "crash messages:"
        grep -Ei 'segmentation|aborted|assert|core dumped|double free|corrupted|stack smashing|sanitizer|helper process .*died' \
                "$SCRATCH/all.msgs" | sort | uniq -c | sed 's/^/    /' | head -n 20
else
        pass "no crash, abort or assertion message"
fi
expected_re="^(merge|refresh|unmerge|status): (Using extensions .*\\.|Merged extensions into '.*'\\.|Unmerged '.*'\\.|Refreshed '.*' atomically\\.|No suitable extensions found\\.|Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh\\.|Hierarchy '/(usr|opt)' is already merged\\.|.*/x\\.raw( \\(deleted\\))?: .*(No such file or directory|not found|vanished).*)$"
unexpected=$(sed "s|$SCRATCH|\$SCRATCH|g" "$SCRATCH/all.msgs" | grep -Ev "$expected_re" | sort | uniq -c || true)
if [[ -z $unexpected ]]; then
        pass "every message is an expected one ($(grep -c '' "$SCRATCH/all.msgs" || true) lines)"
else
        fail "unexpected messages:"
        sed 's/^/    /' <<<"$unexpected" | head -n 30
fi
log "messages seen:"
sed -E "s|$SCRATCH|\$SCRATCH|g; s/'[^']*'/'…'/g" "$SCRATCH/all.msgs" | sort | uniq -c | sort -rn | head -n 15 | sed 's/^/    /'

# No sysext-idmap process survives its worker.
sleep 0.2
left=$(pgrep -f -- "--root=$R" || true)
assert_eq "$left" "" "sysext-idmap processes left running"

log "final state is consistent"
J=$(status_json "$R")
assert_json_valid "$J" "status --json"
for h in usr opt; do
        cnt=$(awk -v p="$R/$h" '$5 == p' /proc/self/mountinfo | wc -l)
        merged=$(json_get "$J" "[h['merged'] for h in j if h['hierarchy'] == '/$h'][0]")
        if [[ $cnt == 0 ]]; then
                assert_eq "$merged" false "/$h: no mount, status says unmerged"
                continue
        fi
        assert_eq "$cnt" 1 "/$h: exactly one overlay"
        assert_eq "$merged" true "/$h: status says merged"
        exts=$(paste -sd' ' "$R/$h/.systemd-sysext/extensions")
        assert_eq "$(json_get "$J" "' '.join([h['extensions'] for h in j if h['hierarchy'] == '/$h'][0])")" "$exts" \
                "/$h: status extensions agree with the marker"
        assert_eq "$(json_get "$J" "[h['device'] for h in j if h['hierarchy'] == '/$h'][0]")" \
                "$(marker_dev "$R/$h")" "/$h: status device agrees with the marker"
        for x in $exts; do
                case $x in
                a|b|c) pass "/$h: merged extension $x exists" ;;
                x) pass "/$h: merged extension x was there when it was merged" ;;
                *) fail "/$h: unknown extension $x" ;;
                esac
        done
done

# One operation merges both hierarchies under the lock: they must carry the same set.
assert_eq "$(merged_exts "$R" /usr)" "$(merged_exts "$R" /opt)" "/usr and /opt carry the same extensions"

log "final unmerge"
assert_ok sx --root="$R" --no-reload unmerge
assert_eq "$(mounts_below "$R" | wc -l)" 0 "mounts below the root after the final unmerge"
assert_no_scratch_loops "after the final unmerge"
assert_eq "$(find /run/sysext-idmap/staging -mindepth 1 2>/dev/null | wc -l)" 0 "nothing left in the staging directory"
J=$(status_json "$R")
assert_eq "$(json_get "$J" "[h['merged'] for h in j]")" "[false, false]" "status after the final unmerge"

log "operations: $ops"
finish
