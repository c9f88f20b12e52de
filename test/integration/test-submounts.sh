#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mounts below a hierarchy survive (systemd v257, #34381; nested ones, #41875): a tmpfs on
# /usr/lib/locale with a tmpfs nested inside it, and a bind mount on /opt/b of a scratch root, are
# visible through the merge, kept by refresh (MOVE_MOUNT_BENEATH and the SYSEXT_IDMAP_NO_BENEATH
# fallback) and back in place after unmerge; a mount made on the merged tree after the merge is
# carried too. Content and the mount tree are checked at each step, once with the root private
# and once shared (as on a systemd host). Then faults at every step of merge, refresh and unmerge
# with sub-mounts (SYSEXT_IDMAP_FAULT=N) leave the mount table as it was, and a mount that cannot
# go back refuses unmerge with one line. All of it twice: as this kernel does it, and (test hooks)
# with SYSEXT_IDMAP_ATTACHED_SUBMOUNTS=1, the order of kernels before 6.15, which cannot move a
# mount onto a detached overlay: attach (or mount beneath), move the sub-mounts onto the attached
# overlay, detach the originals (or the old overlay); there also refresh by unmerge and merge
# under faults, which puts the old merge back.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd timeout findmnt
setup_merge_scratch

R=$SCRATCH/root
E=$R/var/lib/extensions
make_root "$R"
make_ext_dir "$E/a" a
mkdir -p "$E/a/usr/share/only-a" "$R/usr/lib/locale" "$R/usr/share/late" "$R/opt/b" "$SCRATCH/bsrc"
echo B >"$SCRATCH/bsrc/B"
# The root is a mount of its own, so its propagation can be chosen.
mount --bind "$R" "$R"
mount -t tmpfs locale "$R/usr/lib/locale"
echo L >"$R/usr/lib/locale/L"
mkdir "$R/usr/lib/locale/n"
mount -t tmpfs nested "$R/usr/lib/locale/n"
echo N >"$R/usr/lib/locale/n/N"
mount --bind "$SCRATCH/bsrc" "$R/opt/b"

# tree: the mounts at or below the root, path relative to it and fstype, in mount table order.
tree() {
        findmnt -l -n -o TARGET,FSTYPE | awk -v r="$R" 'index($1, r) == 1 { t = substr($1, length(r) + 1); print (t == "" ? "/" : t), $2 }'
}
content() {
        cat "$R/usr/lib/locale/L" "$R/usr/lib/locale/n/N" "$R/opt/b/B" 2>&1 | paste -sd' '
}
# check WHAT MERGED LATE: content and mount tree after a step. Each sub-mount is mounted once at
# its place (no copy left hidden beneath an overlay), an overlay on /usr and /opt iff MERGED.
check() {
        local what=$1 merged=$2 late=$3 want
        assert_eq "$(content)" "L N B" "$what: content of the tmpfs, the nested tmpfs and the bind mount"
        want="/ ext4"
        [[ $merged == yes ]] && want+=$'\n/usr overlay\n/opt overlay'
        want+=$'\n/usr/lib/locale tmpfs\n/usr/lib/locale/n tmpfs\n/opt/b '"$(findmnt -n -o FSTYPE -T "$SCRATCH/bsrc")"
        [[ $late == yes ]] && want+=$'\n/usr/share/late tmpfs'
        assert_eq "$(tree | sort)" "$(sort <<<"$want")" "$what: mount tree"
        if [[ $merged == yes ]]; then
                assert_eq "$(cat "$R/usr/bin/a-hello" | tail -n 1)" 'echo "hello from a"' "$what: the extension is merged"
        else
                assert_eq "$(ls "$R/usr/bin")" base-marker "$what: the extension is gone"
        fi
        if [[ $late == yes ]]; then
                assert_eq "$(cat "$R/usr/share/late/F")" F "$what: the mount made after the merge"
        fi
}

NOTE_HOOK="SYSEXT_IDMAP_ATTACHED_SUBMOUNTS: the mounts below '$R/usr' are moved onto the overlay after it is attached"
NOTE_KERNEL="the kernel cannot attach a mount onto a detached overlay (Linux 6.15+): the mounts below '$R/usr'"
# check_mode WHAT: the note of the merge just run tells the order taken.
check_mode() {
        if [[ $MODE == attached ]]; then
                assert_contains "$LAST_STDERR" "$NOTE_HOOK" "$1: the note says the sub-mounts are carried after the attach"
        elif [[ $LAST_STDERR == *"$NOTE_KERNEL"* ]]; then
                log "$1: this kernel cannot move a mount onto a detached overlay: carried after the attach"
        else
                assert_not_contains "$LAST_STDERR" "briefly not visible" "$1: carried onto the detached overlay, no note"
        fi
}

sequence() {
        for prop in private shared; do
                log "--- $MODE: the root's propagation: $prop"
                prop="$MODE, $prop"
                mount --make-r"${prop#*, }" "$R"
                check "$prop: before" no no
                assert_ok sx --root="$R" --no-reload merge
                check_mode "$prop: merge"
                check "$prop: merge" yes no
                mount -t tmpfs late "$R/usr/share/late"
                echo F >"$R/usr/share/late/F"
                assert_ok sx --root="$R" --no-reload --always-refresh refresh
                assert_contains "$LAST_STDERR" "Refreshed '$R/usr' atomically." "$prop: refresh went beneath"
                check_mode "$prop: refresh"
                check "$prop: refresh (beneath)" yes yes
                assert_ok env SYSEXT_IDMAP_NO_BENEATH=1 "$SYSEXT_IDMAP" --root="$R" --no-reload --always-refresh refresh
                assert_contains "$LAST_STDERR" "Refreshed '$R/usr' (unmerge and merge)." "$prop: refresh by the fallback"
                check "$prop: refresh (NO_BENEATH)" yes yes
                assert_ok sx --root="$R" --no-reload unmerge
                check "$prop: unmerge" no yes
                umount "$R/usr/share/late"
        done
        mount --make-rprivate "$R"

        log "$MODE: a mount on a directory only the extension has cannot go back: unmerge refuses, with one line"
        assert_ok sx --root="$R" --no-reload merge
        mount -t tmpfs only "$R/usr/share/only-a"
        snapshot_state "$SCRATCH/state.only"
        assert_fail sx --root="$R" --no-reload unmerge
        assert_one_stderr_line
        assert_contains "$LAST_STDERR" "usr/share/only-a: cannot keep the mount there: it does not exist in the hierarchy without the merge" \
                "the error names the mount and the reason"
        assert_state_unchanged "$SCRATCH/state.only" "unmerge refused"
        umount "$R/usr/share/only-a"
        assert_ok sx --root="$R" --no-reload unmerge
        check "unmerge after removing it" no no

        if has_test_hooks; then
                faults
        fi
}

# ---- faults ------------------------------------------------------------------------------------
# The state compared: the mount table without mount ids, sorted (a rollback re-attaches a mount
# at the end of its parent's list).
mstate() {
        awk '{ $1 = ""; $2 = ""; print }' /proc/self/mountinfo | sort
}
list_steps() {
        SYSEXT_IDMAP_FAULT_LIST=1 timeout 120 "$@" 2>&1 >/dev/null | awk '$1 == "fault-point" { print $2, $3 }'
}
ensure_unmerged() {
        sx --root="$R" --no-reload unmerge >/dev/null 2>&1 || true
}
on() { awk -v p="$R/$1" '$5 == p' /proc/self/mountinfo | wc -l; }
ensure_merged() {
        [[ $(on usr)/$(on opt) == 1/1 ]] && return 0
        ensure_unmerged
        ensure_unmerged
        sx --root="$R" --no-reload merge >/dev/null 2>&1 || true
}
# fault_loop OP SETUP PAST USR_DONE CMD...: PAST is an extended regex for the errors past the point
# of no return (there, the hierarchies carry one merge and every sub-mount is in place); USR_DONE
# one for the errors of a refresh of /opt once /usr is refreshed (hierarchies are refreshed one
# after the other): the mount table is as it was but for the overlay on /usr.
fault_loop() {
        local op=$1 setup=$2 past=$3 usr_done=$4 n step before count=0
        shift 4
        "$setup"
        local steps
        steps=$(list_steps "$@")
        "$setup"
        while read -r n step; do
                "$setup"
                before=$(mstate)
                run env SYSEXT_IDMAP_FAULT="$n" timeout 120 "$@"
                count=$((count + 1))
                assert_eq "$LAST_RC" 1 "$op: fault $n ($step): exit code"
                if [[ -n $past ]] && grep -Eq "$past" <<<"$LAST_STDERR"; then
                        assert_eq "$(content)" "L N B" "$op: fault $n ($step), past the point of no return: sub-mounts in place"
                        continue
                fi
                if [[ "$(mstate)" == "$before" ]]; then
                        pass "$op: fault $n ($step): mount table as it was"
                elif [[ -n $usr_done ]] && grep -Eq "$usr_done" <<<"$LAST_STDERR" &&
                        [[ "$(mstate | grep -vF " $R/usr ")" == "$(grep -vF " $R/usr " <<<"$before")" ]]; then
                        pass "$op: fault $n ($step): mount table as it was but for the overlay on /usr, refreshed"
                else
                        fail "$op: fault $n ($step): mount table changed: $(tail -n 1 <<<"$LAST_STDERR")"
                        diff <(echo "$before") <(mstate) | head -n 20 | sed 's/^/    /'
                fi
                assert_eq "$(content)" "L N B" "$op: fault $n ($step): sub-mounts in place"
        done <<<"$steps"
        log "$op: $count fault points"
        "$setup"
        assert_ok timeout 120 "$@"
}
faults() {
        fault_loop "$MODE: merge" ensure_unmerged "" "" "$SYSEXT_IDMAP" --root="$R" --no-reload merge
        check "merge after the fault loop" yes no
        fault_loop "$MODE: refresh" ensure_merged "the overlay beneath the old one|could not be detached" "^$R/opt[/:]" \
                "$SYSEXT_IDMAP" --root="$R" --no-reload --always-refresh refresh
        check "$MODE: refresh after the fault loop" yes no
        if [[ $MODE == attached ]]; then
                # Once the old overlay is detached, a fault puts it back (a copy of it saved before).
                fault_loop "$MODE: refresh, NO_BENEATH" ensure_merged "" "^$R/opt[/:]" \
                        env SYSEXT_IDMAP_NO_BENEATH=1 "$SYSEXT_IDMAP" --root="$R" --no-reload --always-refresh refresh
                check "$MODE: refresh (NO_BENEATH) after the fault loop" yes no
        fi
        # unmerge detaches /usr, then /opt: a fault once /usr is done leaves it unmerged (its mounts back
        # in place) and /opt merged. A fault while putting a mount back puts the merge back.
        fault_loop "$MODE: unmerge" ensure_merged "Unmerged '$R/usr'" "" \
                "$SYSEXT_IDMAP" --root="$R" --no-reload unmerge
        check "$MODE: unmerge after the fault loop" no no
}

MODE=detached
sequence
if has_test_hooks; then
        MODE=attached
        export SYSEXT_IDMAP_ATTACHED_SUBMOUNTS=1
        sequence
        unset SYSEXT_IDMAP_ATTACHED_SUBMOUNTS
else
        log "SYSEXT_IDMAP_ATTACHED_SUBMOUNTS=1 (the order before Linux 6.15): skipped, the binary has no test hooks"
fi
finish
