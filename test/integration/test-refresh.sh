#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# refresh: atomic swap under a busy reader, failure keeps the old merge, refresh from unmerged,
# refresh to nothing, the unmerge+merge fallback, and refresh with a file held open.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup timeout
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
export EXT_UID=1000
make_ext_squashfs "$SCRATCH/a.raw" a
make_ext_erofs "$SCRATCH/b.raw" b
unset EXT_UID
cp "$SCRATCH/a.raw" "$E/a.raw"
IDMAP=--idmap=b:1000:0:1

# n_mounts_at PATH: how many mounts sit on PATH (stacked overlays would show up as more than 1).
n_mounts_at() {
        awk -v p="$1" '$5 == p' /proc/self/mountinfo | wc -l
}

wait_loops_settled
snapshot_state "$SCRATCH/state.before"

log "refresh when nothing is merged = merge"
assert_ok sx --root="$R" $IDMAP --no-reload refresh
assert_contains "$LAST_STDERR" "Using extensions 'a'." "refresh notice"
assert_contains "$LAST_STDERR" "Merged extensions into '$R/usr'." "refresh notice"
assert_eq "$(merged_exts "$R" /usr)" a "/usr after refresh from unmerged"
assert_eq "$(n_mounts_at "$R/usr")" 1 "mounts on /usr"
assert_owner "$R/usr/bin/a-hello" 0:0 "a-hello idmapped"

log "a busy reader during 20 refreshes (adding and removing b)"
STOP=$SCRATCH/reader.stop
FAILS=$SCRATCH/reader.fails
COUNT=$SCRATCH/reader.count
: >"$FAILS"
(
        n=0
        while [[ ! -e $STOP ]]; do
                if ! cat "$R/usr/bin/a-hello" >/dev/null 2>&1 || ! [[ -e $R/usr/bin/base-marker ]]; then
                        echo "FAIL at read $n" >>"$FAILS"
                fi
                n=$((n + 1))
        done
        echo "$n" >"$COUNT"
) &
BG_PIDS=$!
sleep 0.3
set_ok=0
t0=$(date +%s)
for i in $(seq 1 20); do
        if ((i % 2)); then
                cp "$SCRATCH/b.raw" "$E/b.raw"
                want=a,b
        else
                rm -f "$E/b.raw"
                want=a
        fi
        run timeout 30 "$SYSEXT_IDMAP" --root="$R" $IDMAP --no-reload refresh
        if ((LAST_RC != 0)); then
                fail "refresh $i: exit $LAST_RC: $LAST_STDERR"
                continue
        fi
        got=$(merged_exts "$R" /usr)
        if [[ $got == "$want" && $LAST_STDERR == *"Refreshed '$R/usr' atomically."* && $(n_mounts_at "$R/usr") == 1 ]]; then
                set_ok=$((set_ok + 1))
        else
                fail "refresh $i: /usr has '$got' (want '$want'), $(n_mounts_at "$R/usr") mounts, stderr: $LAST_STDERR"
        fi
done
# Keep the reader going for about 5 s in all.
while (($(date +%s) - t0 < 5)); do sleep 0.2; done
touch "$STOP"
wait "$BG_PIDS" || true
BG_PIDS=
assert_eq "$set_ok" 20 "refreshes that ended with the right set, one mount, 'atomically'"
assert_eq "$(wc -l <"$FAILS")" 0 "reader failures during the refreshes (of $(cat "$COUNT" 2>/dev/null) reads)"
if (($(cat "$COUNT" 2>/dev/null || echo 0) > 100)); then pass "the reader did read ($(cat "$COUNT") reads)"; else fail "the reader hardly ran: $(cat "$COUNT" 2>/dev/null)"; fi
assert_eq "$(merged_exts "$R" /opt)" a "/opt after the loop"
assert_eq "$(n_mounts_at "$R/opt")" 1 "mounts on /opt"

log "a refresh that fails (a bad image named) keeps the old merge"
cp "$SCRATCH/b.raw" "$E/b.raw"
assert_ok sx --root="$R" $IDMAP --no-reload refresh
dev=$(marker_dev "$R/usr")
head -c 1M /dev/urandom >"$E/c.raw"
wait_loops_settled
snapshot_state "$SCRATCH/state.merged"
assert_fail sx --root="$R" $IDMAP --no-reload refresh "$E/a.raw" "$E/b.raw" "$E/c.raw"
assert_eq "$LAST_RC" 1 "exit code of the failing refresh"
assert_one_stderr_line "c.raw"
assert_state_unchanged "$SCRATCH/state.merged" "failed refresh"
assert_eq "$(marker_dev "$R/usr")" "$dev" "dev marker after the failed refresh"
assert_eq "$(merged_exts "$R" /usr)" a,b "/usr after the failed refresh"
assert_eq "$("$R/usr/bin/b-hello" 2>&1)" "hello from b" "b-hello still runs"
log "discovered, the bad image is skipped and the others refreshed"
assert_ok sx --root="$R" $IDMAP --no-reload refresh
assert_contains "$LAST_STDERR" "Skipping extension 'c': $E/c.raw" "refresh notice"
assert_eq "$(merged_exts "$R" /usr)" a,b "/usr after the refresh skipping c"
rm -f "$E/c.raw"

log "refresh while a file of the merge is held open"
exec 3<"$R/usr/bin/b-hello"
rm -f "$E/b.raw"
assert_ok sx --root="$R" $IDMAP --no-reload refresh
assert_contains "$(cat <&3)" "hello from b" "held-open fd of b-hello after b was refreshed away"
exec 3<&-
assert_eq "$(merged_exts "$R" /usr)" a "/usr after refresh"
if [[ -e $R/usr/bin/b-hello ]]; then fail "b-hello still visible"; else pass "b-hello gone"; fi

if has_test_hooks; then
        log "SYSEXT_IDMAP_NO_BENEATH=1: unmerge + merge fallback"
        cp "$SCRATCH/b.raw" "$E/b.raw"
        SYSEXT_IDMAP_NO_BENEATH=1 assert_ok sx --root="$R" $IDMAP --no-reload refresh
        assert_contains "$LAST_STDERR" "SYSEXT_IDMAP_NO_BENEATH" "fallback note"
        assert_contains "$LAST_STDERR" "Refreshed '$R/usr' (unmerge and merge)." "fallback notice"
        assert_eq "$(merged_exts "$R" /usr)" a,b "/usr after the fallback refresh"
        assert_eq "$(merged_exts "$R" /opt)" a,b "/opt after the fallback refresh"
        assert_eq "$(n_mounts_at "$R/usr")" 1 "mounts on /usr after the fallback refresh"
        assert_eq "$(marker_dev "$R/usr")" "$(stat -c '%Hd:%Ld' "$R/usr")" "dev marker after the fallback refresh"
        assert_owner "$R/usr/bin/b-hello" 0:0 "b-hello idmapped after the fallback refresh"
else
        log "SYSEXT_IDMAP_NO_BENEATH=1 (unmerge + merge fallback): skipped, the binary has no test hooks"
        # What the fallback block would have left: b merged again.
        cp "$SCRATCH/b.raw" "$E/b.raw"
        assert_ok sx --root="$R" $IDMAP --no-reload refresh
fi

log "refresh with no extensions left = unmerge"
rm -f "$E/a.raw" "$E/b.raw"
assert_ok sx --root="$R" $IDMAP --no-reload refresh
assert_contains "$LAST_STDERR" "No suitable extensions found." "refresh notice"
assert_contains "$LAST_STDERR" "Unmerged '$R/usr'." "refresh notice"
assert_eq "$(merged_exts "$R" /usr)" - "/usr after refresh to nothing"
assert_eq "$(merged_exts "$R" /opt)" - "/opt after refresh to nothing"
assert_no_scratch_loops "after refresh to nothing"
assert_state_unchanged "$SCRATCH/state.before" "after all refreshes"

log "refresh with nothing merged and nothing to merge"
assert_ok sx --root="$R" --no-reload refresh
assert_state_unchanged "$SCRATCH/state.before" "no-op refresh"

finish
