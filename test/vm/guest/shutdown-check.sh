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
        dmsetup ls --target verity 2>/dev/null | grep 'No devices found' >/dev/null && break
        sleep 0.2
done
left=$(dmsetup ls --target verity 2>/dev/null | grep -v 'No devices found' | awk '{ print $1 }')
if [[ -z $left ]]; then
        ok "shutdown: no verity device left"
else
        # Processes started after the merge may still run binaries from the detached overlay; the
        # device must then be marked for deferred removal (it goes when they are gone).
        printf '# shutdown: verity devices left: %s\n' "$(echo $left)" >&3
        deferred=1
        for d in $left; do
                timeout 10 dmsetup info "$d" 2>&1 | sed 's/^/# /' >&3
                timeout 10 dmsetup info "$d" 2>/dev/null | grep "DEFERRED REMOVE" >/dev/null || deferred=0
        done
        check "shutdown: the verity devices left are marked for deferred removal" '((deferred))'
fi
# Every check has reported. Diagnostics come after the marker and are bounded (a slow machine
# must not lose the results to the unit's stop timeout, issue 15).
printf '# shutdown-check-done\n' >&3
# What holds the devices: only when the check above failed (expected holders are the mount
# namespaces of services started after the merge, e.g. systemd-logind's).
if [[ -n $left ]] && ((!deferred)); then
        HOLDER_DEVS=$(cat /run/vmtest-usr-devs 2>/dev/null) \
        timeout -k 2 30 /usr/lib/sysext-idmap-vmtest/holders.sh $left | sed 's/^# /# shutdown: /' >&3
fi
timeout 10 journalctl -b -u sysext-idmap.service -o cat 2>&1 | tail -n 4 | sed 's/^/# shutdown journal: /' >&3
exit 0
