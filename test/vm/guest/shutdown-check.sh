#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ExecStop= of sysext-idmap-vmtest-shutdown.service: runs at shutdown after sysext-idmap.service
# was stopped (its ExecStop= is `sysext-idmap unmerge`).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0
exec 3>>/dev/ttyS1
ok() { printf 'ok - %s\n' "$*" >&3; }
notok() { printf 'not ok - %s\n' "$*" >&3; }
check() {
        local name=$1
        shift
        if eval "$@"; then ok "$name"; else notok "$name"; return 1; fi
}
fstype() { findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null | tail -n1; }

state=$(systemctl show -p ActiveState --value sysext-idmap.service 2>&1)
result=$(systemctl show -p Result --value sysext-idmap.service 2>&1)
printf '# shutdown: sysext-idmap.service ActiveState=%s Result=%s\n' "$state" "$result" >&3
check "shutdown: sysext-idmap.service was stopped before this check" '[[ $state == inactive ]]'
check "shutdown: its ExecStop= (unmerge) succeeded" '[[ $result == success ]]'
check "shutdown: /usr is unmerged" '[[ $(fstype /usr) != overlay ]]' || findmnt --mountpoint /usr 2>&1 | sed 's/^/# /' >&3
check "shutdown: /opt is unmerged" '[[ $(fstype /opt) != overlay ]]'
check "shutdown: no extension binary left in /usr" '! [[ -e /usr/bin/vmhello-hello ]]'
for _ in 1 2 3 4 5 6 7 8 9 10; do
        dmsetup ls --target verity 2>/dev/null | grep -q 'No devices found' && break
        sleep 0.2
done
left=$(dmsetup ls --target verity 2>/dev/null | grep -v 'No devices found' | awk '{ print $1 }')
if [[ -z $left ]]; then
        ok "shutdown: no verity device left"
else
        # Processes started after the merge may still run binaries from the detached overlay; the
        # device must then be marked for deferred removal (it goes when they are gone).
        usr_dev=$(cat /run/vmtest-usr-dev 2>/dev/null)
        users=
        if [[ -n $usr_dev ]]; then
                hex=$(printf '%02x:%02x' "${usr_dev%%:*}" "${usr_dev##*:}")
                for p in /proc/[0-9]*; do
                        awk -v d="$hex" '$4 == d { f = 1 } END { exit !f }' "$p/maps" 2>/dev/null &&
                                users+="$(cat "$p/comm" 2>/dev/null)(${p#/proc/}) "
                done
        fi
        nss=
        declare -A seen=()
        for p in /proc/[0-9]*; do
                ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
                [[ -n ${seen[$ns]:-} ]] && continue
                seen[$ns]=1
                awk -v d="$usr_dev" '$3 == d { f = 1 } END { exit !f }' "$p/mountinfo" 2>/dev/null &&
                        nss+="$(cat "$p/comm" 2>/dev/null)(${p#/proc/}) "
        done
        printf '# shutdown: mount namespaces that still have the unmerged overlay mounted: %s\n' "${nss:-none}" >&3
        printf '# shutdown: verity devices left: %s; processes with files of the unmerged overlay %s: %s\n' \
                "$(echo $left)" "$usr_dev" "${users:-none}" >&3
        /usr/lib/sysext-idmap-vmtest/holders.sh $left | sed 's/^# /# shutdown: /' >&3
        deferred=1
        for d in $left; do
                dmsetup info "$d" 2>&1 | sed 's/^/# /' >&3
                dmsetup info "$d" 2>/dev/null | grep -q "DEFERRED REMOVE" || deferred=0
        done
        check "shutdown: the verity devices left are marked for deferred removal" '((deferred))'
fi
journalctl -b -u sysext-idmap.service -o cat 2>&1 | tail -n 4 | sed 's/^/# shutdown journal: /' >&3
printf '# shutdown-check-done\n' >&3
exit 0
