#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The command line contract: --help, --version, and one-line errors for bad input.
# Needs no root and mounts nothing: every command runs against a scratch --root.
set -euo pipefail
source "$TEST_LIB"
require_binary
require_cmd python3
setup_scratch
make_root "$SCRATCH/root"
R=$SCRATCH/root

log "--help lists every verb and option"
assert_ok "$SYSEXT_IDMAP" --help
help=$LAST_STDOUT
for w in status list dissect merge unmerge refresh \
         --help --version --root= --json= --force --no-reload --no-pager --no-legend --idmap= --debug; do
        assert_contains "$help" "$w" "--help"
done
assert_eq "$LAST_STDERR" "" "--help stderr"

log "-h is --help"
assert_ok "$SYSEXT_IDMAP" -h
assert_eq "$LAST_STDOUT" "$help" "-h output"

log "--version prints the package version"
assert_ok "$SYSEXT_IDMAP" --version
assert_contains "$LAST_STDOUT" "$(sed -n "s/^ *version : '\(.*\)',/\1/p" "$SOURCE_ROOT/meson.build")" "--version"

log "unknown option: non-zero exit, one line on stderr"
assert_fail "$SYSEXT_IDMAP" --no-such-option list
assert_one_stderr_line "no-such-option"
assert_fail "$SYSEXT_IDMAP" -Z list
assert_one_stderr_line

log "unknown verb"
assert_fail "$SYSEXT_IDMAP" --root="$R" frobnicate
assert_one_stderr_line "frobnicate"

log "dissect without IMAGE"
assert_fail "$SYSEXT_IDMAP" dissect
assert_one_stderr_line

log "every option that takes a value says so by name when the value is missing"
# The options --help writes as --name=VALUE; the list below must cover them all.
value_options=(root json idmap image-policy verity namespace-of image private-users user mutable noexec class broker)
mapfile -t help_value_options < <(grep -o -- '--[a-z][a-z-]*=' <<<"$help" | sed 's/^--//; s/=$//' | sort -u)
assert_eq "$(printf '%s\n' "${help_value_options[@]}")" "$(printf '%s\n' "${value_options[@]}" | sort)" \
        "value-taking options of --help"
for o in "${value_options[@]}"; do
        assert_fail "$SYSEXT_IDMAP" "--$o"
        assert_eq "$LAST_RC" 1 "exit status of --$o without a value"
        assert_one_stderr_line "Option '--$o' needs an argument."
done
# An abbreviation is named by its full name; a value given to a switch is refused by its name.
assert_fail "$SYSEXT_IDMAP" --ro
assert_one_stderr_line "Option '--root' needs an argument."
assert_fail "$SYSEXT_IDMAP" --force=yes list
assert_one_stderr_line "Option '--force' takes no argument."

log "ids and PIDs are decimal digits only"
for p in 0x1 010x +1 ' 1' -1 4294967296; do
        assert_fail "$SYSEXT_IDMAP" --root="$R" --namespace-of="$p" status
        assert_one_stderr_line "--namespace-of=: '$p'"
done

log "bad --json value"
assert_fail "$SYSEXT_IDMAP" --root="$R" --json=yaml list
assert_one_stderr_line "yaml"

log "good --json values are accepted"
for j in pretty short off; do
        assert_ok "$SYSEXT_IDMAP" --root="$R" --json="$j" list
done
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short list
assert_json_valid "$LAST_STDOUT" "list --json=short on an empty root"
assert_eq "$(json_get "$LAST_STDOUT" 'j')" "[]" "list of an empty root"

log "--no-pager is accepted as systemd-sysext accepts it; --no-legend drops the table header"
assert_ok "$SYSEXT_IDMAP" --root="$R" --no-pager status
with_legend=$LAST_STDOUT
assert_contains "$with_legend" "HIERARCHY" "status header"
assert_ok "$SYSEXT_IDMAP" --root="$R" --no-legend status
assert_eq "$LAST_STDOUT" "$(tail -n +2 <<<"$with_legend")" "status --no-legend is the table without its header"
assert_ok "$SYSEXT_IDMAP" --root="$R" list --no-legend --no-pager

log "bad --idmap specs give one clear line"
for spec in 'b:1:2' 'x:1:2:3' 'u:0:0:0' 'b:a:0:1' 'b:0:0:-1' 'b:4294967295:0:2' \
            'userns:' 'pid:' 'pid:abc' 'user:' 'identity,foreign' 'b:0x10:0:1' 'b:+1:0:1' 'b:4294967296:0:1' 'pid:0x1'; do
        assert_fail "$SYSEXT_IDMAP" --root="$R" --idmap="$spec" list
        assert_one_stderr_line "idmap"
done

log "good --idmap specs are accepted"
# (user:root is refused on purpose: user: maps to ordinary users only.)
for spec in identity 'b:1000:0:1' 'u:1000:0:1,g:1000:0:1' foreign 'user:daemon' 'pid:1' \
            'userns:/proc/self/ns/user' 'b:0:100000:65536'; do
        assert_ok "$SYSEXT_IDMAP" --root="$R" --idmap="$spec" list
done

log "SYSEXT_IDMAP_DEBUG / --debug do not break list"
assert_ok "$SYSEXT_IDMAP" --root="$R" --debug list
assert_ok env SYSEXT_IDMAP_DEBUG=1 "$SYSEXT_IDMAP" --root="$R" list

log "status with --root on a root without merges"
assert_ok "$SYSEXT_IDMAP" --root="$R" --json=short status
assert_json_valid "$LAST_STDOUT" "status --json=short"
assert_eq "$(json_get "$LAST_STDOUT" '[h["merged"] for h in j]')" "[false, false]" "merged flags"
assert_eq "$(json_get "$LAST_STDOUT" 'sorted(h["hierarchy"] for h in j)')" '["/opt", "/usr"]' "hierarchies"

log "--root pointing nowhere"
assert_fail "$SYSEXT_IDMAP" --root="$SCRATCH/missing" list
assert_one_stderr_line "missing"

finish
