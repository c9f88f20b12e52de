#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# holders.sh DM-NAME...: what keeps these device-mapper devices open, as "# " lines: processes
# with an fd, cwd, root, exe or mapping on the device, on one of the overlays in $HOLDER_DEVS
# (MAJOR:MINOR, space-separated: the merges made in this boot), and the mount namespaces (one
# process each) that still mount a sysext overlay or the device. Diagnostics only.
hexdev() { printf '%02x:%02x' "${1%%:*}" "${1##*:}"; }
for name in "$@"; do
        mm=$(dmsetup info -c --noheadings -o major,minor --separator : "$name" 2>/dev/null | tr -d ' ')
        [[ -n $mm ]] || continue
        devs=" $mm ${HOLDER_DEVS:-} "
        hexs=" $(for d in $devs; do hexdev "$d"; printf ' '; done)"
        node=$(readlink -f "/dev/mapper/$name")
        procs=
        for p in /proc/[0-9]*; do
                pid=${p#/proc/}
                what=
                for f in "$p"/fd/* "$p/cwd" "$p/root" "$p/exe"; do
                        t=$(readlink "$f" 2>/dev/null) || continue
                        if [[ $t == "$node" ]]; then
                                what+="${f##*/}=$t,"
                                continue
                        fi
                        d=$(stat -L -c '%Hd:%Ld' "$f" 2>/dev/null) || continue
                        [[ $devs == *" $d "* ]] && what+="${f##*/}=$t[$d],"
                done
                m=$(awk -v h="$hexs" 'index(h, " " $4 " ") { print $6 "[" $4 "]" }' "$p/maps" 2>/dev/null | sort -u | head -n 3 | tr '\n' ',')
                [[ -n $m ]] && what+="maps:$m"
                [[ -n $what ]] && procs+="$(cat "$p/comm" 2>/dev/null)($pid): ${what%,}; "
        done
        nss=
        declare -A seen=()
        for p in /proc/[0-9]*; do
                ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
                [[ -n ${seen[$ns]:-} ]] && continue
                seen[$ns]=1
                m=$(awk -v d="$mm" '($3 == d) || ($9 == "overlay" && $10 == "sysext") { printf "%s[%s] ", $5, $3 }' "$p/mountinfo" 2>/dev/null)
                [[ -n $m ]] && nss+="$(cat "$p/comm" 2>/dev/null)(${p#/proc/}): $m; "
        done
        echo "# $name ($mm): open count $(dmsetup info -c --noheadings -o open "$name" 2>/dev/null | tr -d ' ')"
        echo "#   processes using it or the overlays ${HOLDER_DEVS:-}: ${procs:-none}"
        echo "#   mount namespaces with a sysext overlay or a mount of it: ${nss:-none}"
done
