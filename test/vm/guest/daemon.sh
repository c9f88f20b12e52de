# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Sourced by vmtest.sh (uses its ok/notok/check/say/diag/run_cmd/show): the broker sysext-idmapd
# under the guest's real PID 1 (systemd 252) on Debian's 6.1 kernel, driven by an ordinary user's
# `systemd --user` services (issue 14, issue 15's last bullet).
#
#  1. the units as installed by meson (docs/sysext-idmapd.8), the socket enabled by the
#     administrator; the service has never run until the first client connects;
#  2. a lingering user's oneshot unit (modelled on units/sysext-idmap-user-example.service) runs
#     `sysext-idmap run --image=... -- PROBE` on a trusted system extension: its output shows the
#     extension's files, owned by root inside; `systemctl --user` shows it succeeded; the daemon
#     was socket-activated by PID 1;
#  3. a long-running user unit on the extension survives `systemctl restart sysext-idmapd.service`
#     (it still reads the extension's files), the daemon came back with its layer store from the
#     service manager's fd store: a sandbox started after the restart shares the first one's loop
#     device (one loop device for the image in all);
#  4. with no sandbox left the daemon idles out (--idle-exit=3 from a drop-in), its loop device
#     goes with it, and the next call activates it again.
# 6.1's overlayfs takes no layer fds, so `run` gets the broker's finished overlay (MountOverlay
# with overlay=true) and attaches it in the service's own mount namespace; 6.1 clones no detached
# mount, so the broker clones its pinned superblocks by mounting their loop device again.

DM_USER=sxvmd DM_UID=1102
DM_HOME=/home/$DM_USER
DM_RT=/run/user/$DM_UID
DM_IMG=/run/extensions/vmd.raw          # trusted: root-owned, in a system extension directory
DM_UNITS=$DM_HOME/.config/systemd/user
T_DM=$SECONDS

dm_user() { runuser -u $DM_USER -- env XDG_RUNTIME_DIR=$DM_RT "$@"; }
dm_sysctl() { dm_user timeout 300 systemctl --user --no-pager "$@"; }
dm_loops() { losetup -j "$DM_IMG" 2>/dev/null | grep -c . || true; }
# dm_wait_n UNIT MIN: the long unit's counter once it reaches MIN (bounded by the unit running and
# by a generous 180 s); prints it, or nothing.
dm_wait_n() {
        local t0=$SECONDS n
        while :; do
                n=$(sed -n 's/^n=//p' $DM_HOME/vmd-long.out 2>/dev/null)
                [[ -n $n ]] && ((n >= $2)) && { echo "$n"; return 0; }
                dm_sysctl is-active --quiet "$1" || return 1
                ((SECONDS - t0 < 180)) || { echo timeout; return 1; }
                sleep 0.5
        done
}

# Leave the machine as before: the rest of the test runs without the broker.
dm_cleanup() {
        dm_sysctl stop vmd-long.service vmd-oneshot.service >/dev/null 2>&1
        loginctl disable-linger $DM_USER >/dev/null 2>&1
        systemctl disable --now sysext-idmapd.socket >/dev/null 2>&1
        systemctl stop sysext-idmapd.service >/dev/null 2>&1
        rm -f "$DM_IMG"
        say "daemon: part took $((SECONDS - T_DM)) s"
}
daemon_tests() {
        local st f n0 n1 pid1 pid2 outside

        # ---- 1. installed as the man page says; socket enabled, service never started
        check "daemon: sysext-idmapd.socket and .service are installed (LoadState loaded) and /usr/sbin/sysext-idmapd" \
                '[[ $(systemctl show -p LoadState --value sysext-idmapd.socket) == loaded &&
                    $(systemctl show -p LoadState --value sysext-idmapd.service) == loaded && -x /usr/sbin/sysext-idmapd ]]'
        mkdir -p /run/extensions && cp /srv/vmtest/vmd.raw "$DM_IMG" && chmod 0644 "$DM_IMG"
        run_cmd systemctl enable --now sysext-idmapd.socket
        check "daemon: systemctl enable --now sysext-idmapd.socket succeeds" '((RC == 0))' || show
        check "daemon: the socket is enabled and listening" \
                '[[ $(systemctl is-enabled sysext-idmapd.socket) == enabled && $(systemctl is-active sysext-idmapd.socket) == active ]]'
        st=$(stat -c %A /run/sysext-idmapd/io.systemd.MountFileSystem 2>&1)
        check "daemon: /run/sysext-idmapd/io.systemd.MountFileSystem is a socket anyone may connect to ($st)" '[[ $st == srw-rw-rw- ]]'
        check "daemon: sysext-idmapd.service has not run before the first client (inactive, no start time)" \
                '[[ $(systemctl show -p ActiveState --value sysext-idmapd.service) == inactive &&
                    $(systemctl show -p ExecMainStartTimestampMonotonic --value sysext-idmapd.service) == 0 ]]' ||
                systemctl show -p ActiveState -p ExecMainStartTimestampMonotonic sysext-idmapd.service | diag

        # ---- 2. a lingering user's oneshot unit on the extension
        if ! useradd -m -u $DM_UID -s /bin/bash $DM_USER; then
                notok "daemon: setup: useradd $DM_USER failed"
                return 1
        fi
        mkdir -p $DM_UNITS
        sed "s|@IMAGE@|$DM_IMG|g" /usr/lib/sysext-idmap-vmtest/vmd-oneshot.service.in >$DM_UNITS/vmd-oneshot.service
        sed "s|@IMAGE@|$DM_IMG|g" /usr/lib/sysext-idmap-vmtest/vmd-long.service.in >$DM_UNITS/vmd-long.service
        chown -R $DM_USER: $DM_HOME/.config
        run_cmd loginctl enable-linger $DM_USER
        check "daemon: loginctl enable-linger $DM_USER" '((RC == 0))' || show
        # user@.service starts by itself; bounded by a generous limit (TCG, a loaded host)
        local t0=$SECONDS
        until [[ -S $DM_RT/systemd/private ]] && systemctl is-active --quiet user@$DM_UID.service; do
                if ((SECONDS - t0 >= 180)); then
                        notok "daemon: harness: user@$DM_UID.service did not become active within 180 s (state $(systemctl is-active user@$DM_UID.service))"
                        return 1
                fi
                sleep 0.5
        done
        say "daemon: the user manager of $DM_USER runs after $((SECONDS - t0)) s"
        run_cmd dm_sysctl start vmd-oneshot.service
        check "daemon: the user unit vmd-oneshot.service (ExecStart=sysext-idmap run --image=$DM_IMG) succeeds" '((RC == 0))' || show
        diag <$DM_HOME/vmd-oneshot.out
        f=$DM_HOME/vmd-oneshot.out
        check "daemon: the unit's command runs as root of its own user namespace (uid 0, uid_map 0 $DM_UID 1)" \
                'grep -qx "uid=0" $f && grep -qE "^map=0 +$DM_UID +1$" $f'
        check "daemon: it runs the extension's binary (a file only vmd ships)" 'grep -qx "hello=hello from vmd" $f'
        check "daemon: it reads /opt/vmd/data from the extension" 'grep -qx "opt=vmd data" $f'
        check "daemon: the extension's files are owned by root inside" 'grep -qx "owner=0:0" $f'
        check "daemon: the overlay exists only in the unit's mount namespace (not on the host's /usr)" \
                '! [[ -e /usr/bin/vmd-hello ]]'
        run_cmd dm_sysctl show -p Result -p ActiveState -p ExecMainStatus vmd-oneshot.service
        check "daemon: systemctl --user show: Result=success, ExecMainStatus=0, active (RemainAfterExit)" \
                '[[ $OUT == *"Result=success"* && $OUT == *"ExecMainStatus=0"* && $OUT == *"ActiveState=active"* ]]' || show
        run_cmd dm_sysctl status --lines=5 vmd-oneshot.service
        printf '%s\n' "$OUT" | diag
        check "daemon: systemctl --user status shows it exited with status 0/SUCCESS" \
                '[[ $OUT == *"Active: active (exited)"* && $OUT == *"status=0/SUCCESS"* ]]'
        check "daemon: sysext-idmapd.service is active now: PID 1 started it for the socket's first connection" \
                '[[ $(systemctl is-active sysext-idmapd.service) == active &&
                    $(systemctl show -p TriggeredBy --value sysext-idmapd.service) == *sysext-idmapd.socket* ]]' ||
                systemctl status --no-pager --lines=10 sysext-idmapd.service 2>&1 | diag
        journalctl -b -u sysext-idmapd.service -o cat --no-pager 2>&1 | tail -n 8 | diag

        # ---- 3. a long-running user service survives a restart of the daemon
        run_cmd dm_sysctl start vmd-long.service
        check "daemon: the long-running user unit vmd-long.service starts" '((RC == 0))' || show
        n0=$(dm_wait_n vmd-long.service 1)
        [[ $n0 == timeout ]] && notok "daemon: harness: vmd-long.service wrote nothing within 180 s"
        check "daemon: vmd-long.service reads its extension's files (counter ${n0:-none})" \
                '[[ $n0 =~ ^[0-9]+$ ]] && grep -qx "opt=vmd data" $DM_HOME/vmd-long.out' ||
                { cat $DM_HOME/vmd-long.out 2>&1 | diag; dm_sysctl status --lines=10 vmd-long.service 2>&1 | diag; }
        pid1=$(sed -n 's/^pid=//p' $DM_HOME/vmd-long.out 2>/dev/null)
        if [[ -n $pid1 ]]; then
                outside=$(nsenter -t "$pid1" -m -- stat -c %u:%g /usr/bin/vmd-hello 2>&1)
                check "daemon: seen from outside its user namespace the extension's files belong to $DM_USER ($outside)" \
                        '[[ $outside == "$DM_UID:$(id -g $DM_USER)" ]]'
        fi
        check "daemon: one loop device for $DM_IMG ($(dm_loops))" '[[ $(dm_loops) == 1 ]]' || losetup -a | diag
        n1=$(systemctl show -p NFileDescriptorStore --value sysext-idmapd.service)
        say "daemon: fd store before the restart: ${n1:-?} fds"
        check "daemon: the daemon put its layer pins into PID 1's fd store (NFileDescriptorStore ${n1:-none})" \
                '[[ $n1 =~ ^[0-9]+$ ]] && ((n1 >= 1))'
        pid1=$(systemctl show -p MainPID --value sysext-idmapd.service)
        run_cmd timeout 300 systemctl restart sysext-idmapd.service
        pid2=$(systemctl show -p MainPID --value sysext-idmapd.service)
        check "daemon: systemctl restart sysext-idmapd.service succeeds (MainPID $pid1 -> $pid2)" \
                '((RC == 0)) && [[ $pid2 != 0 && $pid2 != "$pid1" ]]' || show
        n0=$(sed -n 's/^n=//p' $DM_HOME/vmd-long.out 2>/dev/null)
        n1=$(dm_wait_n vmd-long.service $((n0 + 2)))
        [[ $n1 == timeout ]] && notok "daemon: harness: vmd-long.service's counter did not move within 180 s after the restart"
        check "daemon: after the restart vmd-long.service still runs and reads its extension's files (counter $n0 -> ${n1:-none})" \
                '[[ $n1 =~ ^[0-9]+$ ]] && grep -qx "opt=vmd data" $DM_HOME/vmd-long.out && grep -qx "hello=hello from vmd" $DM_HOME/vmd-long.out' ||
                cat $DM_HOME/vmd-long.out 2>&1 | diag
        run_cmd dm_user timeout 300 sysext-idmap run --image="$DM_IMG" -- cat /opt/vmd/data
        check "daemon: a second sandbox after the restart runs on the extension" '((RC == 0)) && [[ $OUT == "vmd data" ]]' || show
        check "daemon: ... and shares the first one's loop device: the layer store came back from the fd store (loop devices: $(dm_loops))" \
                '[[ $(dm_loops) == 1 ]]' || { losetup -a | diag; journalctl -b -u sysext-idmapd.service -o cat --no-pager | tail -n 10 | diag; }

        # ---- 4. idle exit, and the next call activates the daemon again
        # The unit's default --idle-exit= is 90 s; a drop-in shortens it for the test. The daemon
        # does not exit while a sandbox uses its layers, so the long unit goes first; the restart
        # (which keeps the fd store) starts it with the drop-in's command line.
        dm_sysctl stop vmd-long.service vmd-oneshot.service >/dev/null 2>&1
        mkdir -p /run/systemd/system/sysext-idmapd.service.d
        printf '[Service]\nExecStart=\nExecStart=/usr/sbin/sysext-idmapd --idle-exit=3\n' \
                >/run/systemd/system/sysext-idmapd.service.d/vmtest-idle.conf
        systemctl daemon-reload
        run_cmd timeout 300 systemctl restart sysext-idmapd.service
        check "daemon: restarted with --idle-exit=3 (a drop-in)" '((RC == 0))' || show
        t0=$SECONDS
        while systemctl is-active --quiet sysext-idmapd.service && ((SECONDS - t0 < 180)); do sleep 0.5; done
        st="$(systemctl show -p ActiveState --value sysext-idmapd.service) $(systemctl show -p Result --value sysext-idmapd.service)"
        if systemctl is-active --quiet sysext-idmapd.service; then
                notok "daemon: harness: sysext-idmapd.service did not idle out within 180 s (state $st)"
        else
                say "daemon: idle exit after $((SECONDS - t0)) s"
                check "daemon: with no sandbox left the daemon exits when idle, successfully ($st), its socket still listening" \
                        '[[ $st == "inactive success" && $(systemctl is-active sysext-idmapd.socket) == active ]]'
        fi
        t0=$SECONDS
        while [[ $(dm_loops) != 0 ]] && ((SECONDS - t0 < 60)); do sleep 0.5; done
        check "daemon: ... and no loop device for $DM_IMG is left (its pins went with it: $(dm_loops))" '[[ $(dm_loops) == 0 ]]' ||
                losetup -a | diag
        pid1=$(systemctl show -p InvocationID --value sysext-idmapd.service)
        run_cmd dm_user timeout 300 sysext-idmap run --image="$DM_IMG" -- cat /opt/vmd/data
        check "daemon: the next call activates it again and runs on the extension" \
                '((RC == 0)) && [[ $OUT == "vmd data" ]] && [[ $(systemctl show -p InvocationID --value sysext-idmapd.service) != "$pid1" ]]' || show
        rm -f /run/systemd/system/sysext-idmapd.service.d/vmtest-idle.conf
        rmdir /run/systemd/system/sysext-idmapd.service.d 2>/dev/null
        systemctl daemon-reload

        dm_cleanup
}
daemon_tests
