#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fault injection at every step: for merge, refresh, unmerge, merge over path layers and merge
# --namespace-of, list the steps (SYSEXT_IDMAP_FAULT_LIST=1), then fail each one in turn
# (SYSEXT_IDMAP_FAULT=N). Every failure exits 1, names the injected step and says what failed,
# and leaves mounts (ours and the target's), loop devices, the root's files and the runtime
# directory as they were. After the loop a normal run succeeds.
#
# Refresh swaps one hierarchy at a time: the new overlay goes beneath the old one (the point of no
# return for that hierarchy), then the old one is detached. A fault at or after the first
# beneath-move cannot restore "exactly as before"; what must hold then is that every hierarchy
# carries exactly one merge, the old or the new one, never both stacked and never none, and that
# status and a later unmerge agree with it.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_test_hooks
require_cmd python3 mksquashfs mkfs.erofs losetup unshare timeout
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
make_ext_squashfs "$E/b.raw" b
make_ext_erofs "$E/c.raw" c
make_ext_squashfs "$SCRATCH/d.raw" d
RUNDIR=/run/sysext-idmap
MERGE_IMGS=("$E/a" "$E/b.raw" "$E/c.raw")
REFRESH_IMGS=("$E/a" "$E/b.raw" "$E/c.raw" "$E/d.raw")
TARGET=
TOTAL=0

# The whole observable state: our mount table, the target's, loop devices of scratch files, every
# file below the root and the runtime directory (sizes and mtimes).
full_state() {
        _state
        echo "--- target mounts"
        if [[ -n $TARGET ]]; then
                awk '{ $1 = ""; $2 = ""; print }' "/proc/$TARGET/mountinfo"
        fi
        echo "--- root files"
        find "$R" -xdev -printf '%p %y %s %T@ %U:%G %m\n' 2>/dev/null | sort
        echo "--- runtime dir"
        find "$RUNDIR" -printf '%p %y %s %T@\n' 2>/dev/null | sort
}

# overlays_on PATH [PID]: number of mounts stacked on PATH (ours or PID's mount table).
overlays_on() {
        awk -v p="$1" '$5 == p' "/proc/${2:-self}/mountinfo" | wc -l
}

# steps OP-ARGS...: the fault points of one run, "N NAME" a line, and undo what the run did.
list_steps() {
        SYSEXT_IDMAP_FAULT_LIST=1 timeout 120 "$@" 2>&1 >/dev/null | awk '$1 == "fault-point" { print $2, $3 }'
}

# check_fault WHAT N STEP SNAP CMD...: run CMD with the fault at step N and check the failure.
# Leaves the exit code in LAST_RC and stderr in LAST_STDERR.
check_fault() {
        local what=$1 n=$2 step=$3
        shift 3
        run env SYSEXT_IDMAP_FAULT="$n" timeout 120 "$@"
        assert_eq "$LAST_RC" 1 "$what: fault $n ($step): exit code"
        # A loop device lost to another process on the machine is retried inside one step
        # (loop-configure), so the numbering is the listing's. The step number must match; the
        # name is reported, and a different one only logged.
        local injected got
        injected=$(grep -E "^sysext-idmap: injected fault at step $n \([a-z_0-9-]+\)$" <<<"$LAST_STDERR" || true)
        got=${injected##* (}
        got=${got%)}
        if [[ -n $injected ]]; then
                pass "$what: fault $n: stderr names the step ($got)"
                [[ $got == "$step" ]] || log "$what: fault $n: the listing said $step, this run hit $got (a retried step shifted the count)"
        else
                fail "$what: fault $n: stderr lacks 'sysext-idmap: injected fault at step $n (...)':"
                sed 's/^/    /' <<<"$LAST_STDERR" | head -n 10
        fi
        # The operation's own error: the last line, after the injected one, saying what failed.
        local last
        last=$(tail -n 1 <<<"$LAST_STDERR")
        if [[ -n $last && $last != "$injected" && $last != Merged* && $last != Refreshed* && $last != Unmerged* && $last != fault-point* && $last != Using* &&
              $last != *"Aborted"* && $last != *"Segmentation"* ]]; then
                pass "$what: fault $n: error line: $(_show "$last")"
        else
                fail "$what: fault $n: no error line after the injected one:"
                sed 's/^/    /' <<<"$LAST_STDERR" | head -n 10
        fi
        TOTAL=$((TOTAL + 1))
}

assert_full_state() {   # assert_full_state SNAP WHAT
        local now=$SCRATCH/state.now
        wait_loops_settled
        full_state >"$now"
        if diff -u "$1" "$now" >"$now.diff"; then
                pass "$2: mounts, target mounts, loop devices, root files and runtime dir unchanged"
        else
                fail "$2: state changed:"
                sed 's/^/    /' "$now.diff" | head -n 40
        fi
}

snap() {
        wait_loops_settled
        full_state >"$1"
}

# fault_loop OP SETUP CMD...: SETUP brings the state the operation starts from (a function name).
declare -A COUNT
fault_loop() {
        local op=$1 setup=$2
        shift 2
        local steps n step count
        "$setup"
        steps=$(list_steps "$@")
        # list_steps really ran the operation: bring the starting state back.
        "$setup"
        count=$(grep -c '' <<<"$steps" || true)
        log "$op: $count fault points: $(awk '{ printf "%s%s", sep, $2; sep = " " }' <<<"$steps")"
        if ((count == 0)); then
                fail "$op: no fault points listed"
                return
        fi
        COUNT[$op]=$count
        while read -r n step; do
                "$setup"
                snap "$SCRATCH/state.before"
                check_fault "$op" "$n" "$step" "$@"
                post_check_"${op//[^a-z]/_}" "$n" "$step"
        done <<<"$steps"
        "$setup"
        assert_ok timeout 120 "$@"
}

# ---- merge from unmerged ----------------------------------------------------------------------
ensure_unmerged() {
        local i
        for i in 1 2 3; do
                [[ $(overlays_on "$R/usr") == 0 && $(overlays_on "$R/opt") == 0 ]] && break
                sx --root="$R" --no-reload unmerge >/dev/null 2>&1 || true
        done
        if [[ -n $TARGET ]]; then
                for i in 1 2 3; do
                        [[ $(overlays_on "$R/usr" "$TARGET") == 0 && $(overlays_on "$R/opt" "$TARGET") == 0 ]] && break
                        sx --root="$R" --namespace-of="$TARGET" --no-reload unmerge >/dev/null 2>&1 || true
                done
        fi
}
post_check_merge() {
        assert_full_state "$SCRATCH/state.before" "merge: fault $1 ($2)"
}
post_check_merge_path() { post_check_merge "$@"; }
log "merge of a directory, a squashfs and an erofs image with --idmap=b:1000:0:1"
fault_loop merge ensure_unmerged "$SYSEXT_IDMAP" --root="$R" --idmap=b:1000:0:1 --no-reload merge "${MERGE_IMGS[@]}"
assert_eq "$(merged_exts "$R" /usr)" a,b,c "merge after the fault loop: /usr"
# b:1000:0:1 maps only on-disk 1000 to root: the image's root-owned files show as the overflow id.
assert_owner "$R/usr/bin/a-hello" 65534:65534 "merge after the fault loop: a-hello idmapped (unmapped root)"

# ---- refresh from a merged state, adding d ---------------------------------------------------
OLD_USR= OLD_OPT= NEW_SET=a,b,c,d OLD_SET=a,b,c
ensure_old_merge() {
        local i
        cp -n "$SCRATCH/d.raw" "$E/d.raw"
        for i in 1 2 3; do
                if [[ $(overlays_on "$R/usr") == 1 && $(overlays_on "$R/opt") == 1 &&
                      $(marker_dev "$R/usr") == "$OLD_USR" && $(marker_dev "$R/opt") == "$OLD_OPT" ]]; then
                        return 0
                fi
                ensure_unmerged
                sx --root="$R" --idmap=b:1000:0:1 --no-reload merge "${MERGE_IMGS[@]}" >/dev/null 2>&1 || true
                OLD_USR=$(marker_dev "$R/usr")
                OLD_OPT=$(marker_dev "$R/opt")
        done
}
# The first beneath-move of the refresh is its point of no return.
NO_RETURN=
post_check_refresh() {
        local n=$1 step=$2 h usr opt
        # Classified by what failed, not by the listing's number (a retried step shifts it).
        if [[ $LAST_STDERR != *"the overlay beneath the old one"* && $LAST_STDERR != *"could not be detached"* ]]; then
                assert_full_state "$SCRATCH/state.before" "refresh: fault $n ($step)"
                assert_eq "$(marker_dev "$R/usr")/$(marker_dev "$R/opt")" "$OLD_USR/$OLD_OPT" \
                        "refresh: fault $n: old merge intact (.systemd-sysext/dev)"
                return
        fi
        # Past the point of no return. A failed beneath-move leaves that hierarchy's old merge (the
        # ones before it are already refreshed): one overlay, old or new. A failed detach of the old
        # overlay after the new one went beneath cannot be undone (the kernel cannot take a mount
        # out from beneath another, and detaching the new one would take the old one with it): the
        # old merge stays visible on top of the new one. status shows the top, and unmerge removes
        # both.
        for h in usr opt; do
                local cnt exts want
                cnt=$(overlays_on "$R/$h")
                exts=$(merged_exts "$R" "/$h")
                if [[ $cnt == 1 && ($exts == "$OLD_SET" || $exts == "$NEW_SET") ]]; then
                        pass "refresh: fault $n ($step): /$h carries one merge ($exts)"
                elif [[ $cnt == 2 && $exts == "$OLD_SET" && $LAST_STDERR == *"/$h: new overlay attached, but the old one could not be detached"* ]]; then
                        pass "refresh: fault $n ($step): /$h: the old merge ($exts) stays on top of the new one, as the error says"
                else
                        fail "refresh: fault $n ($step): /$h has $cnt mounts stacked, status says '$exts'"
                        awk -v p="$R/$h" '$5 == p' /proc/self/mountinfo | sed 's/^/    /'
                fi
                want=$(paste -sd, "$R/$h/.systemd-sysext/extensions" 2>/dev/null || true)
                assert_eq "$exts" "${want:--}" "refresh: fault $n: status of /$h agrees with the marker on top"
        done
        # Whatever the failure left, unmerge removes all of it.
        assert_ok sx --root="$R" --no-reload unmerge
        assert_eq "$(overlays_on "$R/usr")/$(overlays_on "$R/opt")" 0/0 \
                "refresh: fault $n: unmerge after the failure removes every overlay"
        assert_no_scratch_loops "refresh: fault $n: after unmerge"
}
log "refresh from a merge of a, b, c, adding d"
ensure_old_merge
NO_RETURN=$(list_steps "$SYSEXT_IDMAP" --root="$R" --no-reload refresh "${REFRESH_IMGS[@]}" |
                awk '$2 == "move_mount" { print $1; exit }')
OLD_USR=
log "refresh: the first beneath-move is step $NO_RETURN; faults from there on may leave the new merge"
fault_loop refresh ensure_old_merge "$SYSEXT_IDMAP" --root="$R" --no-reload refresh "${REFRESH_IMGS[@]}"
assert_eq "$(merged_exts "$R" /usr)" a,b,c,d "refresh after the fault loop: /usr"
assert_eq "$(overlays_on "$R/usr")/$(overlays_on "$R/opt")" 1/1 "refresh after the fault loop: one overlay each"

# ---- unmerge ----------------------------------------------------------------------------------
ensure_merged() {
        [[ $(overlays_on "$R/usr") == 1 && $(overlays_on "$R/opt") == 1 ]] && return 0
        ensure_unmerged
        sx --root="$R" --idmap=b:1000:0:1 --no-reload merge "${MERGE_IMGS[@]}" >/dev/null 2>&1 || true
}
post_check_unmerge() {
        local n=$1 step=$2
        # unmerge detaches /usr, then /opt, and stops at the first failure: a fault at the first
        # leaves everything merged; a fault at the second leaves /usr unmerged (a detached mount
        # cannot be attached again) and /opt merged. Each hierarchy is merged or cleanly unmerged.
        if ((n == 1)); then
                assert_full_state "$SCRATCH/state.before" "unmerge: fault $n ($step)"
                assert_eq "$(merged_exts "$R" /usr)" a,b,c "unmerge: fault $n: still merged"
        else
                assert_eq "$(overlays_on "$R/usr")/$(overlays_on "$R/opt")" 0/1 \
                        "unmerge: fault $n ($step): /usr unmerged, /opt still merged"
                assert_eq "$(merged_exts "$R" /opt)" a,b,c "unmerge: fault $n: /opt still merged with"
                # Running unmerge again finishes the job.
                assert_ok sx --root="$R" --no-reload unmerge
                assert_eq "$(overlays_on "$R/usr")/$(overlays_on "$R/opt")" 0/0 "unmerge: fault $n: a second unmerge finishes"
        fi
}
log "unmerge"
fault_loop unmerge ensure_merged "$SYSEXT_IDMAP" --root="$R" --no-reload unmerge
assert_eq "$(overlays_on "$R/usr")/$(overlays_on "$R/opt")" 0/0 "unmerge after the fault loop"
assert_no_scratch_loops "unmerge after the fault loop"

# ---- merge over path layers (staging helper) ---------------------------------------------------
log "merge with SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 (staging helper in a private namespace)"
export SYSEXT_IDMAP_FORCE_PATH_LAYERS=1
fault_loop merge-path ensure_unmerged "$SYSEXT_IDMAP" --root="$R" --idmap=b:1000:0:1 --no-reload merge "${MERGE_IMGS[@]}"
assert_eq "$(merged_exts "$R" /usr)" a,b,c "merge over path layers after the fault loop: /usr"
unset SYSEXT_IDMAP_FORCE_PATH_LAYERS
ensure_unmerged

# ---- merge --namespace-of ---------------------------------------------------------------------
log "merge --namespace-of=PID of an unshare -U -m process"
start_userns -m --propagation private
TARGET=$STARTED_PID
post_check_merge_ns() {
        assert_full_state "$SCRATCH/state.before" "merge --namespace-of: fault $1 ($2)"
}
fault_loop merge-ns ensure_unmerged "$SYSEXT_IDMAP" --root="$R" --namespace-of="$TARGET" --no-reload merge "${MERGE_IMGS[@]}"
assert_eq "$(overlays_on "$R/usr" "$TARGET")/$(overlays_on "$R/usr")" 1/0 \
        "merge --namespace-of after the fault loop: in the target, not here"
ensure_unmerged
assert_no_scratch_loops "after the last unmerge"

for op in merge refresh unmerge merge-path merge-ns; do
        log "fault points injected for $op: ${COUNT[$op]:-0}"
done
log "fault points injected: $TOTAL"
finish
