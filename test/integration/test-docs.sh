#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The documentation follows --help: every verb and long option --help lists must appear in the man
# page, the README and both shell completions; every option the man page documents (an item of
# its option lists) or a completion offers must be one --help lists. Needs no root.
set -euo pipefail
source "$TEST_LIB"
require_binary

MAN=$SOURCE_ROOT/docs/sysext-idmap.1
README=$SOURCE_ROOT/README.md
BASH_COMP=$SOURCE_ROOT/shell-completion/bash/sysext-idmap
ZSH_COMP=$SOURCE_ROOT/shell-completion/zsh/_sysext-idmap
for f in "$MAN" "$README" "$BASH_COMP" "$ZSH_COMP"; do
        [[ -f $f ]] || skip "$f is missing"
done

assert_ok "$SYSEXT_IDMAP" --help
help=$LAST_STDOUT

# Verbs: the first word of the indented lines of the "Commands:" block.
mapfile -t verbs < <(sed -n '/^Commands:/,/^$/{/^  [a-z]/{s/^  \([a-z-]*\).*/\1/p}}' <<<"$help")
# Long options: every --word in the "Options" blocks, without a value.
mapfile -t options < <(sed -n '/^Options/,$p' <<<"$help" | grep -o -- '--[a-z][a-z-]*' | sort -u)

log "--help yields ${#verbs[@]} verbs and ${#options[@]} long options"
if ((${#verbs[@]} < 7 || ${#options[@]} < 16)); then
        fail "--help parsed into too few verbs (${verbs[*]}) or options (${options[*]})"
else
        pass "--help parsed: ${verbs[*]}"
fi

# The man page source with troff's \- turned into plain hyphens.
man_text=$(sed 's/\\-/-/g' "$MAN")

# Does TEXT contain OPTION as a whole option name (not a prefix of a longer one)?
has_option() {
        grep -qE -- "(^|[^a-z-])$2([^a-z-]|\$)" <<<"$1"
}

check_file() {
        local what=$1 text=$2 o v missing=()
        for o in "${options[@]}"; do
                has_option "$text" "$o" || missing+=("$o")
        done
        for v in "${verbs[@]}"; do
                grep -qE "(^|[^a-z-])$v([^a-z-]|\$)" <<<"$text" || missing+=("verb $v")
        done
        if ((${#missing[@]} > 0)); then
                fail "$what lacks: ${missing[*]}"
        else
                pass "$what has every verb and option of --help"
        fi
}

log "every verb and option of --help is documented and completed"
check_file "man page" "$man_text"
check_file "README.md" "$(cat "$README")"
check_file "bash completion" "$(cat "$BASH_COMP")"
check_file "zsh completion" "$(cat "$ZSH_COMP")"

log "the man page documents no option --help lacks"
# Option items: the line after .TP that starts with a font macro and names --something.
mapfile -t man_options < <(sed 's/\\-/-/g' "$MAN" | awk 'prev == ".TP" && /^\.(B|BI|BR|IR|RB) +-/ { print } { prev = $0 }' |
                           grep -o -- '--[a-z][a-z-]*' | sort -u)
extra=()
for o in "${man_options[@]}"; do
        printf '%s\n' "${options[@]}" | grep -xF -- "$o" >/dev/null || extra+=("$o")
done
if ((${#man_options[@]} == 0)); then
        fail "found no option items in the man page"
elif ((${#extra[@]} > 0)); then
        fail "man page documents options --help lacks: ${extra[*]}"
else
        pass "man page documents ${#man_options[@]} options, all in --help"
fi

log "the completions offer no option --help lacks"
for f in "$BASH_COMP" "$ZSH_COMP"; do
        extra=()
        # Option words in the completion source (comments aside): "--name" followed by '=', '[', a
        # quote or a blank.
        while read -r o; do
                [[ $o == -- ]] && continue
                printf '%s\n' "${options[@]}" | grep -xF -- "$o" >/dev/null || extra+=("$o")
        done < <(grep -v '^[[:space:]]*#' "$f" | grep -oE -- "(^|[ '\"(])--[a-z][a-z-]*[=[ '\"]" | grep -oE -- '--[a-z][a-z-]*' | sort -u)
        if ((${#extra[@]} > 0)); then
                fail "${f#"$SOURCE_ROOT"/} offers options --help lacks: ${extra[*]}"
        else
                pass "${f#"$SOURCE_ROOT"/} offers only options of --help"
        fi
done

finish
