#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# session-probe.sh OUT RELEASE NAME...: run as the command of a login session (ssh, su) by
# logins.sh. Writes what the session sees as KEY=VALUE lines to OUT (complete when it appears:
# written to OUT.tmp, then renamed). With RELEASE (a path; "-" for none) it then stays until that
# file exists (at most 300 s), so that root can look at the running session from outside.
out=$1 release=$2
shift 2
# The top mount on a path in this session's mount namespace: "OPTIONS FSTYPE SOURCE SUPER-OPTIONS".
mnt() {
        awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++) ; o = $6 " " $(i + 1) " " $(i + 2) " " $(i + 3) } END { print o }' /proc/self/mountinfo
}
{
        echo "uid=$(id -u)"
        echo "gid=$(id -g)"
        echo "pid=$$"
        echo "ns=$(readlink /proc/self/ns/mnt)"
        for n in "$@"; do
                if [ -e "/usr/lib/extension-release.d/extension-release.$n" ]; then
                        echo "has:$n=yes"
                else
                        echo "has:$n=no"
                fi
                echo "owner:$n=$(stat -c %u:%g "/usr/bin/$n-hello" 2>/dev/null)"
                echo "run:$n=$("/usr/bin/$n-hello" 2>&1)"
        done
        for m in /usr /opt /etc; do
                echo "mnt:$m=$(mnt $m)"
        done
        echo "etc=$(cat /etc/sxvm-etc 2>/dev/null || echo missing)"
        # The home as the session sees it: its mount (systemd-homed's own, idmapped or not), owner,
        # and whether the user can write there.
        echo "home=$HOME"
        echo "mnt:home=$(mnt "$HOME")"
        echo "homeowner=$(stat -c %u:%g "$HOME" 2>/dev/null)"
        # (touch, not a redirection: sh exits when the redirection of a special builtin fails)
        if touch "$HOME/.sxvm-probe" 2>/dev/null && [ "$(stat -c %u "$HOME/.sxvm-probe")" = "$(id -u)" ]; then
                echo "homewrite=ok"
        else
                echo "homewrite=failed"
        fi
        echo "runparts=$(sha256sum </usr/bin/run-parts | cut -d' ' -f1)"
        # Loop and device-mapper devices (world-readable in sysfs): what reached the kernel.
        echo "loops=$(cat /sys/block/loop*/loop/backing_file 2>/dev/null | tr '\n' ' ')"
        echo "dm=$(cat /sys/block/dm-*/dm/name 2>/dev/null | tr '\n' ' ')"
} >"$out.tmp" 2>&1
mv -f "$out.tmp" "$out"
if [ "$release" != - ]; then
        i=0
        while [ ! -e "$release" ] && [ $i -lt 1500 ]; do
                sleep 0.2
                i=$((i + 1))
        done
fi
exit 0
