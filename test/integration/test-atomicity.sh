#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# All or nothing: with two good images and a bad third one named, merge and refresh fail with
# exit 1 and one stderr line naming the bad file, and leave mounts, loop devices and the root's
# files as they were (an existing merge stays); discovered, the bad one is left out with a notice
# naming it and the good ones are merged. Two concurrent merges: the lock lets exactly one through.
set -euo pipefail
source "$TEST_LIB"
source "$(dirname "$TEST_LIB")/lib-merge.sh"
enter_private_ns "$@"
require_binary
require_cmd python3 mksquashfs mkfs.erofs losetup timeout
setup_merge_scratch

make_ext_squashfs "$SCRATCH/b.raw" b

squash_tree() {         # squash_tree SRC OUT
        mksquashfs "$1" "$2" -noappend -quiet -no-progress -all-root >/dev/null
}

# make_bad VARIANT OUT: the bad third image "c" in one of its broken forms.
make_bad() {
        local v=$1 out=$2 t=$SCRATCH/bad-$1
        rm -rf "$t"
        case $v in
        garbage)
                head -c 1M /dev/urandom >"$out" ;;
        truncated|truncated-erofs)
                # Big enough (incompressible data) that cutting it in half loses real content:
                # a tiny image is smaller than 4 KiB, so "truncate -s 4096" would extend it.
                make_ext_tree "$t" c
                head -c 512K /dev/urandom >"$t/usr/lib/c-payload"
                if [[ $v == truncated ]]; then
                        squash_tree "$t" "$out"
                else
                        mkfs.erofs --quiet --all-root "$out" "$t" >/dev/null
                fi
                truncate -s $(($(stat -c %s "$out") / 2)) "$out" ;;
        release-binary)
                make_ext_tree "$t" c
                head -c 256 /dev/urandom | tr -d '\n' >"$t/usr/lib/extension-release.d/extension-release.c"
                squash_tree "$t" "$out" ;;
        release-missing)
                make_ext_tree "$t" c
                rm "$t/usr/lib/extension-release.d/extension-release.c"
                squash_tree "$t" "$out" ;;
        release-no-id)
                make_ext_tree "$t" c VERSION_ID=12
                squash_tree "$t" "$out" ;;
        incompatible)
                make_ext_tree "$t" c ID=fedora VERSION_ID=39
                squash_tree "$t" "$out" ;;
        os-release)
                make_ext_tree "$t" c
                printf 'ID=debian\nVERSION_ID=12\n' >"$t/usr/lib/os-release"
                squash_tree "$t" "$out" ;;
        usr-symlink)
                make_ext_tree "$t" c
                rm -rf "$t/usr"
                ln -s / "$t/usr"
                squash_tree "$t" "$out" ;;
        esac
}

# new_root NAME: a root with good images a (directory) and b (squashfs) in var/lib/extensions.
new_root() {
        R=$SCRATCH/roots/$1
        E=$R/var/lib/extensions
        make_root "$R"
        make_ext_dir "$E/a" a
        cp "$SCRATCH/b.raw" "$E/b.raw"
}

# expect_failure WHAT NEEDLE SNAP TREE CMD...
expect_failure() {
        local what=$1 needle=$2 snap=$3 tree=$4
        shift 4
        assert_fail timeout 60 "$@"
        assert_eq "$LAST_RC" 1 "$what: exit code"
        assert_one_stderr_line "$needle"
        wait_loops_settled
        assert_state_unchanged "$snap" "$what"
        assert_tree_unchanged "$R" "$tree" "$what"
}

# check_variant VARIANT EXPLICIT: merge/refresh with the bad image discovered (EXPLICIT=0) or named.
check_variant() {
        local v=$1 explicit=$2 what=$1 snap tree dev
        local -a imgs=()
        ((explicit)) && what="$v (named)"
        new_root "$v-$explicit"
        make_bad "$v" "$E/c.raw"
        ((explicit)) && imgs=("$E/a" "$E/b.raw" "$E/c.raw")
        snap=$SCRATCH/state.$v.$explicit
        tree=$SCRATCH/tree.$v.$explicit

        log "bad third image: $what: merge"
        wait_loops_settled
        snapshot_state "$snap"
        tree_snapshot "$R" "$tree"
        expect_failure "$what: merge" c.raw "$snap" "$tree" \
                "$SYSEXT_IDMAP" --root="$R" --idmap=b:0:0:1 --no-reload merge "${imgs[@]}"
        if [[ -e $R/usr/.systemd-sysext ]]; then
                fail "$what: merge marker left behind"
                # Undo the unexpected merge so that the refresh part below still tells something.
                sx --root="$R" --no-reload unmerge 2>/dev/null || true
        else
                pass "$what: no merge marker"
        fi

        log "bad third image: $what: refresh from a merged state"
        assert_ok sx --root="$R" --no-reload merge "$E/a" "$E/b.raw"
        dev=$(marker_dev "$R/usr")
        wait_loops_settled
        snapshot_state "$snap.merged"
        tree_snapshot "$R" "$tree.merged"
        expect_failure "$what: refresh" c.raw "$snap.merged" "$tree.merged" \
                "$SYSEXT_IDMAP" --root="$R" --no-reload refresh "${imgs[@]}"
        assert_eq "$(marker_dev "$R/usr")" "$dev" "$what: dev marker after the failed refresh"
        assert_eq "$(merged_exts "$R" /usr)" a,b "$what: /usr still merged with"
        assert_eq "$("$R/usr/bin/b-hello" 2>&1)" "hello from b" "$what: b-hello still runs"
        assert_ok sx --root="$R" --no-reload unmerge
        assert_no_scratch_loops "$what: after unmerge"
        assert_state_unchanged "$snap" "$what: after unmerge"
}

# check_skipped VARIANT: discovered, the bad image is left out with one notice naming it.
check_skipped() {
        local v=$1
        new_root "$v-skip"
        make_bad "$v" "$E/c.raw"
        log "bad third image: $v (discovered): skipped"
        assert_ok timeout 60 "$SYSEXT_IDMAP" --root="$R" --idmap=b:0:0:1 --no-reload merge
        assert_contains "$LAST_STDERR" "Skipping extension 'c': $E/c.raw" "$v: notice"
        assert_eq "$(grep -c "'c'" <<<"$LAST_STDERR")" 1 "$v: lines naming c"
        assert_eq "$(merged_exts "$R" /usr)" a,b "$v: /usr merged with"
        assert_ok sx --root="$R" --no-reload unmerge
}

# truncated-erofs: erofs keeps its metadata at the front, so the kernel would mount a half-missing
# image and only reading a file would give EIO; dissection compares the superblock's size with the
# image and refuses it first.
for v in garbage truncated truncated-erofs release-binary release-missing os-release usr-symlink; do
        check_variant "$v" 1
        check_skipped "$v"
done
# Incompatible images (wrong ID, no ID) are an error only when named; discovered, they are skipped.
for v in incompatible release-no-id; do
        check_variant "$v" 1
        log "discovered $v image is skipped with a notice"
        assert_ok sx --root="$R" --no-reload merge
        assert_contains "$LAST_STDERR" "Extension 'c' is not compatible" "merge notice"
        assert_contains "$LAST_STDERR" "Using extensions 'a', 'b'." "merge notice"
        assert_eq "$(merged_exts "$R" /usr)" a,b "/usr merged with"
        assert_ok sx --root="$R" --no-reload unmerge
done

log "--idmap=user:nonexistent with three good images"
new_root idmap-user
make_ext_erofs "$E/c.raw" c
wait_loops_settled
snapshot_state "$SCRATCH/state.user"
tree_snapshot "$R" "$SCRATCH/tree.user"
expect_failure "user:nonexistent merge" "no-such-user-sxidmap" "$SCRATCH/state.user" "$SCRATCH/tree.user" \
        "$SYSEXT_IDMAP" --root="$R" --idmap=user:no-such-user-sxidmap --no-reload merge
assert_ok sx --root="$R" --no-reload merge
wait_loops_settled
snapshot_state "$SCRATCH/state.user.merged"
tree_snapshot "$R" "$SCRATCH/tree.user.merged"
expect_failure "user:nonexistent refresh" "no-such-user-sxidmap" "$SCRATCH/state.user.merged" "$SCRATCH/tree.user.merged" \
        "$SYSEXT_IDMAP" --root="$R" --idmap=user:no-such-user-sxidmap --no-reload refresh
assert_eq "$(merged_exts "$R" /usr)" a,b,c "/usr still merged with"
assert_ok sx --root="$R" --no-reload unmerge

log "two concurrent merges: exactly one wins, the other is told it is already merged"
R=$SCRATCH/roots/idmap-user
for i in 1 2 3 4 5; do
        wait_loops_settled
        snapshot_state "$SCRATCH/state.conc"
        "$SYSEXT_IDMAP" --root="$R" --idmap=b:0:0:1 --no-reload merge >/dev/null 2>"$SCRATCH/conc1.err" &
        p1=$!
        "$SYSEXT_IDMAP" --root="$R" --idmap=b:0:0:1 --no-reload merge >/dev/null 2>"$SCRATCH/conc2.err" &
        p2=$!
        BG_PIDS="$p1 $p2"
        rc1=0; wait "$p1" || rc1=$?
        rc2=0; wait "$p2" || rc2=$?
        BG_PIDS=
        if [[ $rc1 == 0 && $rc2 == 1 ]]; then loser=$SCRATCH/conc2.err
        elif [[ $rc1 == 1 && $rc2 == 0 ]]; then loser=$SCRATCH/conc1.err
        else
                fail "round $i: exit codes $rc1 and $rc2 (want one 0 and one 1)"
                sed 's/^/    /' "$SCRATCH/conc1.err" "$SCRATCH/conc2.err"
                sx --root="$R" --no-reload unmerge 2>/dev/null || true
                continue
        fi
        pass "round $i: one merge succeeded, the other exited 1"
        assert_eq "$(cat "$loser")" "Hierarchy '/usr' is already merged." "round $i: stderr of the loser"
        assert_eq "$(awk -v p="$R/usr" '$5 == p' /proc/self/mountinfo | wc -l)" 1 "round $i: mounts on /usr"
        assert_eq "$(awk -v p="$R/opt" '$5 == p' /proc/self/mountinfo | wc -l)" 1 "round $i: mounts on /opt"
        assert_ok sx --root="$R" --no-reload unmerge
        assert_no_scratch_loops "round $i: after unmerge"
        assert_state_unchanged "$SCRATCH/state.conc" "round $i: after unmerge"
done

finish
