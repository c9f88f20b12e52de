#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# holders.sh DM-NAME...: what keeps these device-mapper devices open, one "# " line each:
# processes with an fd on the device, and the mount namespaces (one process each) that still
# mount a sysext overlay or a file system of the device. Used for diagnostics only.
for name in "$@"; do
        mm=$(dmsetup info -c --noheadings -o major,minor --separator : "$name" 2>/dev/null | tr -d ' ')
        [[ -n $mm ]] || continue
        node=$(readlink -f "/dev/mapper/$name")
        fds=
        for f in /proc/[0-9]*/fd/*; do
                t=$(readlink "$f" 2>/dev/null) || continue
                [[ $t == "$node" || $t == "/dev/mapper/$name" ]] || continue
                p=${f#/proc/}
                p=${p%%/*}
                fds+="$(cat "/proc/$p/comm" 2>/dev/null)($p) "
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
        echo "# $name ($mm): open fds: ${fds:-none}; namespaces with a sysext overlay or a mount of it: ${nss:-none}"
done
