#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The command of the VM test's user units (guest/daemon.sh), run by `sysext-idmap run` on the
# extension vmd: what it sees. Without an argument once, to stdout; with DIR, again and again into
# DIR/vmd-long.out (replaced whole each time, with a counter), until it is stopped.
probe() {
        echo "pid=$$"
        echo "uid=$(id -u)"
        awk '{ print "map=" $1, $2, $3 }' /proc/self/uid_map
        echo "hello=$(vmd-hello 2>&1)"
        echo "opt=$(cat /opt/vmd/data 2>&1)"
        echo "owner=$(stat -c %u:%g /usr/bin/vmd-hello 2>&1)"
}
if [ -z "$1" ]; then
        probe
        exit 0
fi
i=0
while :; do
        i=$((i + 1))
        { probe; echo "n=$i"; } >"$1/.vmd-long.tmp" 2>&1
        mv -f "$1/.vmd-long.tmp" "$1/vmd-long.out"
        sleep 1
done
