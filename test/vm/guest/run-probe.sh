#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The command of sysext-idmap-vmrun*.service, run by `sysext-idmap run --private-users=...`:
# what it sees of itself and of the idmapped extension. With "wait", it then stays (so that the
# test can look at its mount namespace from outside).
echo "pid=$$"
echo "uid=$(id -u)"
echo "map=$(head -n1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
echo "owner=$(stat -c %u:%g /usr/bin/vmrun-hello 2>&1)"
echo "hello=$(/usr/bin/vmrun-hello 2>&1)"
echo "usr=$(findmnt -n -o FSTYPE --mountpoint /usr | tail -n1)"
if [ "${1:-}" = wait ]; then
        exec sleep 600
fi
