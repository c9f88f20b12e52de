# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Sourced by vmtest.sh (uses its ok/notok/check/say/diag/run_cmd/show and fd 3): real logins
# through pam_sysext_idmap installed as its man page says (`session optional pam_sysext_idmap.so`
# in /etc/pam.d/common-session after pam_systemd; stage-guest.sh puts it there) with Debian's
# own, unchanged /etc/pam.d/sshd and /etc/pam.d/su, and issue 11's attacks end to end:
#
#   build   the installed binary and module are a default build: no test hooks in them
#   su      an ordinary user su's to another with the password (through a pty), with an
#           environment that tries to steer the module: SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc,
#           SYSEXT_IDMAP_VERITY_DIRS=~/certs (an image signed by the attacker's own certificate),
#           SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin with _FORCE_PATH_LAYERS=1 and _FAULT=1
#   sshd    root and an ordinary user log in with a key over ssh to localhost; the user's
#           session has the trusted system image (owned by the user), not the user's unsigned
#           image that shadows /usr/bin/run-parts (which pam_motd runs as root after
#           common-session), and the user's signed image through kernel dm-verity; after logout
#           no loop or verity device of the session is left
#
# Fixtures (stage-guest.sh): /var/lib/sysext-idmap/user-extensions/sxvmsys.raw (trusted: unsigned
# erofs, root-owned path, files 65534, ships etc/sxvm-etc); /srv/vmtest/logins/{uxrp.raw
# (unsigned erofs with usr/bin/run-parts), uxsigned.raw (DDI signed with the key of
# /etc/verity.d/vmtest.crt), uself.raw (DDI signed with attacker.crt, which is nowhere trusted)}.
# Every wait polls with a stated limit; a failing check names the product behaviour.

LG_W=/run/sxvm                  # work files; 1777 so that the session users write probe output
LG_SRC=/srv/vmtest/logins
LG_PROBE=/usr/lib/sysext-idmap-vmtest/session-probe.sh
LG_SYSIMG=/var/lib/sysext-idmap/user-extensions/sxvmsys.raw
LG_PAMMOD=/usr/lib/x86_64-linux-gnu/security/pam_sysext_idmap.so
LG_HOOK_VARS=(SYSEXT_IDMAP_FAULT SYSEXT_IDMAP_FAULT_LIST SYSEXT_IDMAP_VERITY_DIRS SYSEXT_IDMAP_RUNTIME_DIR
              SYSEXT_IDMAP_FORCE_PATH_LAYERS SYSEXT_IDMAP_NO_BENEATH SYSEXT_IDMAP_ATTACHED_SUBMOUNTS)
U1=sxvmuser U1_UID=1100         # the attacker: an ordinary user
U2=sxvmother U2_UID=1101        # the second ordinary user, the target of su
U1_HOME=/home/$U1 U2_HOME=/home/$U2
UXDIR=.local/share/extensions
UXHASH=$(cat $LG_SRC/uxsigned.roothash-expected 2>/dev/null)

# wait_for SECONDS COND: poll COND (a shell expression) every 0.2 s until it holds (0) or SECONDS
# have passed (1).
wait_for() {
        local limit=$1 t0=$SECONDS
        shift
        until eval "$*"; do
                ((SECONDS - t0 >= limit)) && return 1
                sleep 0.2
        done
        return 0
}
pval() { sed -n "s|^$2=||p" "$1" 2>/dev/null | head -n1; }     # pval FILE KEY
mnt_opts() { local v; v=$(pval "$1" "mnt:$2"); echo "${v%% *}"; }
mnt_type() { local v; v=$(pval "$1" "mnt:$2"); v=${v#* }; echo "${v%% *}"; }
has_opt() { [[ ,$1, == *,"$2",* ]]; }
# the session's loop and verity devices: any loop on a fixture image, the verity device of uxsigned
lg_devices() {
        local f
        for f in "$LG_SYSIMG" "$U1_HOME/$UXDIR"/*.raw "$U2_HOME/$UXDIR"/*.raw; do
                [[ -e $f ]] && losetup -n -O NAME,BACK-FILE -j "$f" 2>/dev/null
        done
        dmsetup table --target verity 2>/dev/null | grep -F " $UXHASH " | cut -d: -f1
}
lg_journal() {  # the module's and the PAM applications' last journal lines, as diagnostics
        timeout 20 journalctl -b -o cat --no-pager -n 400 2>/dev/null |
                grep -E 'pam_sysext_idmap|sshd\[|su\[' | tail -n "${1:-12}" | diag
}

# su_session TAG VAR=VALUE... -- SU-ARGS...: as $U1 (real and effective uid, its own groups, no
# capabilities; environment: PATH, HOME, USER, LOGNAME, TERM, SHELL and the given variables) run
# `su SU-ARGS` in a pty (script), and type $U2_PW at the password prompt once it shows. Sets
# SU_RC (su's exit status, 124 if the 300 s limit killed it) and SU_PROMPTED; the terminal
# output is in $LG_W/TAG.tty.
su_session() {
        local tag=$1 fifo=$LG_W/$1.in tty=$LG_W/$1.tty w pid cmd
        shift
        local -a envs=()
        while [[ $1 != -- ]]; do envs+=("$1"); shift; done
        shift
        printf -v cmd '%q ' su "$@"
        rm -f "$fifo" "$tty"
        mkfifo -m 0600 "$fifo"
        exec {w}<>"$fifo"
        timeout -k 5 300 setpriv --reuid="$U1_UID" --regid="$U1_GID" --init-groups -- \
                env -i PATH=/usr/bin:/bin HOME="$U1_HOME" USER=$U1 LOGNAME=$U1 TERM=dumb SHELL=/bin/sh \
                "${envs[@]}" script -qec "$cmd" /dev/null <"$fifo" >"$tty" 2>&1 &
        pid=$!
        SU_PROMPTED=0 SU_PROMPT_TIMEOUT=0
        # The prompt comes after pam_unix flushed the terminal's input (misc_conv, TCSAFLUSH):
        # typing before it would be lost.
        wait_for 180 'grep -q "Password:" "$tty" 2>/dev/null || ! kill -0 $pid 2>/dev/null' ||
                SU_PROMPT_TIMEOUT=1
        if grep -q "Password:" "$tty" 2>/dev/null; then
                printf '%s\n' "$U2_PW" >&"$w"
                SU_PROMPTED=1
        fi
        SU_RC=0
        wait "$pid" || SU_RC=$?
        exec {w}>&-
        rm -f "$fifo"
}
# su_probe TAG VAR=VALUE... -- SU-OPTIONS...: su_session to $U2 running the session probe, whose
# output is then $LG_W/TAG.out; checks that su asked for the password and ran the probe as $U2.
su_probe() {
        local tag=$1 what=$2
        shift 2
        local -a envs=()
        while [[ $1 != -- ]]; do envs+=("$1"); shift; done
        shift
        rm -f "$LG_W/$tag.out"
        su_session "$tag" "${envs[@]}" -- "$@" $U2 -c "$LG_PROBE $LG_W/$tag.out - sxvmsys uxsigned uself"
        if ((SU_PROMPTED == 1 && SU_RC == 0)) && [[ $(pval "$LG_W/$tag.out" uid) == "$U2_UID" ]]; then
                ok "su: $what: $U1 su'd to $U2 with the password, the command ran as $U2 in the session"
                return 0
        fi
        if ((SU_PROMPT_TIMEOUT)); then
                notok "su: $what: harness: su showed no password prompt within 180 s"
        elif ((SU_RC == 124 || SU_RC == 137)); then
                notok "su: $what: harness: su did not finish within 300 s (prompted=$SU_PROMPTED)"
        else
                notok "su: $what: su by $U1 to $U2 did not run the session's command (prompted=$SU_PROMPTED rc=$SU_RC)"
        fi
        say "su terminal output:"
        head -c 2000 "$LG_W/$tag.tty" 2>/dev/null | tr -d '\r' | head -n 15 | diag
        lg_journal
        return 1
}

logins_setup() {
        local u f
        mkdir -p -m 1777 "$LG_W"
        chmod 1777 "$LG_W"
        for f in "$LG_SYSIMG" $LG_SRC/uxrp.raw $LG_SRC/uxsigned.raw $LG_SRC/uself.raw $LG_SRC/attacker.crt; do
                [[ -s $f ]] || { notok "logins: setup: fixture $f is missing (stage-guest.sh)"; return 1; }
        done
        [[ ${#UXHASH} -eq 64 ]] || { notok "logins: setup: no root hash for uxsigned"; return 1; }
        if ! useradd -m -u $U1_UID -s /bin/bash $U1 || ! useradd -m -u $U2_UID -s /bin/bash $U2; then
                notok "logins: setup: useradd failed"
                return 1
        fi
        U1_GID=$(id -g $U1) U2_GID=$(id -g $U2)
        U2_PW=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
        # Not chpasswd: it goes through /etc/pam.d/chpasswd -> common-password, where
        # pam-auth-update (for systemd-homed) put pam_systemd_home first and gave pam_unix
        # use_authtok, which fails for a user that is not homed's (Debian's stack, not the module).
        local hash
        hash=$(printf '%s\n' "$U2_PW" | openssl passwd -6 -stdin) && usermod -p "$hash" $U2 ||
                { notok "logins: setup: setting $U2's password failed"; return 1; }
        # One key for root and $U1 (the client runs as root).
        rm -f $LG_W/id_ed25519 $LG_W/id_ed25519.pub
        ssh-keygen -q -t ed25519 -N '' -C sxvm -f $LG_W/id_ed25519 || { notok "logins: setup: ssh-keygen failed"; return 1; }
        for u in root $U1; do
                local h
                h=$(getent passwd $u | cut -d: -f6)
                install -d -m 0700 -o $u -g "$(id -g $u)" "$h/.ssh"
                install -m 0600 -o $u -g "$(id -g $u)" $LG_W/id_ed25519.pub "$h/.ssh/authorized_keys"
        done
        # $U1's home: the unsigned run-parts image and the signed one; the attacker's certificate.
        # $U2's home: the signed one and the attacker-signed one, world-readable (so only the
        # signature can be the reason to leave it out).
        for u in $U1 $U2; do
                runuser -u $u -- mkdir -p "/home/$u/$UXDIR" || { notok "logins: setup: mkdir in $u's home failed"; return 1; }
        done
        install -m 0644 -o $U1 -g "$U1_GID" $LG_SRC/uxrp.raw $LG_SRC/uxsigned.raw "$U1_HOME/$UXDIR/"
        install -m 0644 -o $U2 -g "$U2_GID" $LG_SRC/uxsigned.raw $LG_SRC/uself.raw "$U2_HOME/$UXDIR/"
        install -d -m 0755 -o $U1 -g "$U1_GID" "$U1_HOME/certs"
        install -m 0644 -o $U1 -g "$U1_GID" $LG_SRC/attacker.crt "$U1_HOME/certs/self.crt"
        return 0
}

logins_build() {
        local f s n found
        run_cmd sysext-idmap --version
        check "build: the installed sysext-idmap is a default build (--version says -test-hooks)" \
                '((RC == 0)) && [[ $OUT == *" -test-hooks"* ]]' || show
        # Debian's libpam loads modules from the directory of pam_unix.so.
        check "build: pam_sysext_idmap.so is installed beside Debian's pam_unix.so ($LG_PAMMOD)" \
                '[[ -f $LG_PAMMOD && $(dirname "$(readlink -f /lib/x86_64-linux-gnu/security/pam_unix.so)") == "$(dirname "$(readlink -f $LG_PAMMOD)")" ]]'
        for f in /usr/bin/sysext-idmap "$LG_PAMMOD"; do
                found=
                for s in "${LG_HOOK_VARS[@]}"; do
                        if command -v strings >/dev/null; then
                                n=$(strings -a "$f" 2>/dev/null | grep -c -F "$s")
                        else
                                n=$(grep -a -c -F "$s" "$f" 2>/dev/null)
                        fi
                        ((${n:-0} > 0)) && found+=" $s"
                done
                if [[ -z $found ]]; then
                        ok "build: $f contains no test-hook variable name (${LG_HOOK_VARS[*]})"
                else
                        notok "build: the installed $f contains test-hook variables:$found"
                fi
        done
}

logins_su() {
        local t0=$SECONDS tag

        # 1. SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc, through `su -`: the trusted system image
        #    ships etc/sxvm-etc; the module's hierarchies are its own option, /usr:/opt.
        tag=su-hier
        if su_probe $tag "SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc" SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc -- -; then
                local o=$LG_W/$tag.out
                check "su: the trusted system image is merged in $U2's su session" \
                        '[[ $(pval $o has:sxvmsys) == yes && $(pval $o run:sxvmsys) == "hello from sxvmsys" ]]'
                check "su: ... its files (nobody on disk) belong to $U2 ($(pval $o owner:sxvmsys))" \
                        '[[ $(pval $o owner:sxvmsys) == "$U2_UID:$U2_GID" ]]'
                check "su: SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: /etc in the session has no overlay ($(pval $o mnt:/etc))" \
                        '[[ $(mnt_type $o /etc) != overlay ]]'
                check "su: SYSTEMD_SYSEXT_HIERARCHIES=/usr:/opt:/etc: the image's etc/sxvm-etc is not in the session's /etc" \
                        '[[ $(pval $o etc) == missing && ! -e /etc/sxvm-etc ]]'
                check "su: the session's /usr is an overlay mounted nodev ($(mnt_opts $o /usr))" \
                        '[[ $(mnt_type $o /usr) == overlay ]] && has_opt "$(mnt_opts $o /usr)" nodev'
        fi

        # 2. SYSEXT_IDMAP_VERITY_DIRS=~/certs: uself in $U2's home is signed by $U1's own
        #    certificate; uxsigned beside it (signed by the trusted key) shows the home is read.
        tag=su-verity
        if su_probe $tag "SYSEXT_IDMAP_VERITY_DIRS=~/certs" SYSEXT_IDMAP_VERITY_DIRS="$U1_HOME/certs" --; then
                local o=$LG_W/$tag.out
                check "su: the image in $U2's home signed by a trusted certificate is merged (uxsigned)" \
                        '[[ $(pval $o has:uxsigned) == yes && $(pval $o run:uxsigned) == "hello from uxsigned" ]]'
                check "su: SYSEXT_IDMAP_VERITY_DIRS=~/certs: the image signed by the attacker's own certificate is left out" \
                        '[[ $(pval $o has:uself) == no ]]'
                check "su: SYSEXT_IDMAP_VERITY_DIRS=~/certs: the attacker-signed image never reached the kernel (no loop device on it)" \
                        '[[ " $(pval $o loops) " != *"/uself.raw "* ]]' || say "loops: $(pval $o loops)"
                check "su: ... and the trusted system image is still merged" '[[ $(pval $o has:sxvmsys) == yes ]]'
        fi

        # 3. SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin with _FORCE_PATH_LAYERS=1 (root once created
        #    /run/nologin/…: every later login refused) and _FAULT=1 (fail a mount step).
        tag=su-rtdir
        if [[ -e /run/nologin ]]; then
                say "/run/nologin exists before the attack (removed): $(ls -ld /run/nologin 2>&1)"
                rm -rf /run/nologin
        fi
        if su_probe $tag "SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin, _FORCE_PATH_LAYERS=1, _FAULT=1" \
                        SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin SYSEXT_IDMAP_FORCE_PATH_LAYERS=1 SYSEXT_IDMAP_FAULT=1 -- -; then
                local o=$LG_W/$tag.out
                check "su: SYSEXT_IDMAP_*: the merge is not steered (the trusted image is merged as without them)" \
                        '[[ $(pval $o has:sxvmsys) == yes && $(pval $o has:uxsigned) == yes && $(pval $o has:uself) == no ]]'
        fi
        check "su: SYSEXT_IDMAP_RUNTIME_DIR=/run/nologin: /run/nologin was not created" '[[ ! -e /run/nologin ]]' ||
                say "/run/nologin: $(find /run/nologin 2>&1 | head -n 3 | tr '\n' ' ')"

        # The su sessions are over: nothing of theirs may stay.
        if wait_for 120 '[[ -z $(lg_devices) ]]'; then
                ok "su: after the su sessions no loop device on their images and no verity device of uxsigned is left"
        else
                notok "su: loop or verity devices of ended su sessions are left (120 s after): $(lg_devices | tr '\n' ' ')"
        fi
        say "logins: su part took $((SECONDS - t0)) s"
}

SSH=(ssh -n -i $LG_W/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=60)

logins_sshd() {
        local t0=$SECONDS o=$LG_W/ssh.out rel=$LG_W/ssh.release ssh_pid spid rc host_rp

        if ! wait_for 180 '[[ $(systemctl is-active ssh.service) == active ]]'; then
                notok "sshd: harness: ssh.service is not active after 180 s ($(systemctl is-active ssh.service 2>&1))"
                timeout 20 systemctl status --no-pager --lines=10 ssh.service 2>&1 | diag
                return 1
        fi
        ok "sshd: ssh.service is active"

        # Root, after the su attacks (pam_nologin is in sshd's account stack; /run/nologin would
        # only stop the others, which the login of $U1 below shows).
        run_cmd timeout 300 "${SSH[@]}" root@localhost id -u
        if ((RC == 124)); then
                notok "sshd: harness: root's ssh login did not finish within 300 s"
        else
                check "sshd: root logs in over ssh with a key after the su attacks" '((RC == 0)) && [[ $OUT == 0 ]]' || show
        fi
        local after="after the su attacks: /run/nologin not in the way"
        if [[ -e /run/nologin ]]; then
                # already failed above; the checks below then test sshd on their own
                say "removing /run/nologin (made by the su attack) before $U1's login"
                rm -rf /run/nologin
                after="/run/nologin made by the su attack removed first"
        fi

        # $U1's session, held open by the probe until $rel exists.
        rm -f /run/motd.dynamic /run/sxvm-marker.uxrp $LG_W/ran.uxrp "$o" "$rel"
        timeout -k 5 400 "${SSH[@]}" $U1@localhost "$LG_PROBE $o $rel sxvmsys uxsigned uxrp" >$LG_W/ssh.log 2>&1 &
        ssh_pid=$!
        wait_for 300 '[[ -s $o ]] || ! kill -0 $ssh_pid 2>/dev/null' ||
                notok "sshd: harness: $U1's ssh login did not run its command within 300 s"
        spid=$(pval $o pid)
        if [[ $(pval $o uid) == "$U1_UID" && -n $spid && -d /proc/$spid ]]; then
                ok "sshd: $U1 logs in over ssh with a key through Debian's /etc/pam.d/sshd ($after)"
                check "sshd: the session has a mount namespace of its own" \
                        '[[ $(readlink /proc/$spid/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]]'
                # (a) the trusted system image, idmapped to the user
                check "sshd: the trusted system image is merged in $U1's session" \
                        '[[ $(pval $o has:sxvmsys) == yes && $(pval $o run:sxvmsys) == "hello from sxvmsys" ]]'
                check "sshd: ... its files (nobody on disk) belong to $U1 inside ($(pval $o owner:sxvmsys)) and seen from outside" \
                        '[[ $(pval $o owner:sxvmsys) == "$U1_UID:$U1_GID" && $(stat -c %u:%g /proc/$spid/root/usr/bin/sxvmsys-hello 2>&1) == "$U1_UID:$U1_GID" ]]'
                check "sshd: ... and only in the session, not in the host's /usr" '[[ ! -e /usr/bin/sxvmsys-hello ]]'
                check "sshd: the session's /usr is an overlay mounted nodev ($(mnt_opts $o /usr))" \
                        '[[ $(mnt_type $o /usr) == overlay ]] && has_opt "$(mnt_opts $o /usr)" nodev'
                # (b) the unsigned image shadowing run-parts
                check "sshd: the user's unsigned image (shadowing /usr/bin/run-parts) is left out of the session" \
                        '[[ $(pval $o has:uxrp) == no && ! -e /proc/$spid/root/usr/lib/extension-release.d/extension-release.uxrp ]]'
                host_rp=$(sha256sum </usr/bin/run-parts | cut -d' ' -f1)
                check "sshd: /usr/bin/run-parts in the session is the host's" \
                        '[[ $(pval $o runparts) == "$host_rp" ]] && cmp -s /proc/$spid/root/usr/bin/run-parts /usr/bin/run-parts'
                check "sshd: the unsigned image never reached the kernel (no loop device on it)" \
                        '[[ -z $(losetup -n -j "$U1_HOME/$UXDIR/uxrp.raw" 2>/dev/null) ]]'
                # (the control: pam_motd did run run-parts, and the host's one, whose
                # /etc/update-motd.d/10-uname prints `uname -snrvm`; the user's prints nothing)
                check "sshd: pam_motd ran the host's run-parts as root in the session (/run/motd.dynamic has 10-uname's line)" \
                        'grep -qF "$(uname -snrvm)" /run/motd.dynamic 2>/dev/null' ||
                        say "/run/motd.dynamic: $(head -c 200 /run/motd.dynamic 2>&1)"
                # (c) the signed image, through dm-verity
                check "sshd: the user's image signed by a trusted certificate is merged (uxsigned, owned by $U1)" \
                        '[[ $(pval $o has:uxsigned) == yes && $(pval $o run:uxsigned) == "hello from uxsigned" && $(pval $o owner:uxsigned) == "$U1_UID:$U1_GID" ]]'
                local vname
                vname=$(dmsetup table --target verity 2>/dev/null | grep -F " $UXHASH " | cut -d: -f1 | head -n1)
                dmsetup ls --target verity 2>&1 | diag
                check "sshd: ... served through kernel dm-verity (a verity device with its root hash, ${vname:-none}, is open)" \
                        '[[ $vname == sysext-idmap-* ]] && (($(dmsetup info -c --noheadings -o open "$vname" 2>/dev/null | tr -d " ") >= 1))'
                check "sshd: ... the session sees that device (/sys/block/dm-*/dm/name)" '[[ " $(pval $o dm) " == *" $vname "* ]]'
        else
                notok "sshd: $U1's ssh login did not run the session's command (uid '$(pval $o uid)')"
                head -n 20 $LG_W/ssh.log 2>/dev/null | diag
                lg_journal
        fi

        # Log out.
        touch "$rel"
        wait_for 120 '! kill -0 $ssh_pid 2>/dev/null' ||
                notok "sshd: harness: $U1's ssh session did not end within 120 s of the release"
        rc=0
        wait $ssh_pid || rc=$?
        check "sshd: $U1's ssh session ends normally (ssh exit status $rc)" '((rc == 0))' || head -n 20 $LG_W/ssh.log | diag
        check "sshd: root never ran the user's run-parts (no marker written as root)" \
                '[[ ! -e /run/sxvm-marker.uxrp ]]' || say "marker: $(cat /run/sxvm-marker.uxrp 2>&1)"
        check "sshd: the user's run-parts never ran at all" '[[ ! -e $LG_W/ran.uxrp ]]' || say "ran: $(cat $LG_W/ran.uxrp 2>&1)"
        if wait_for 120 '[[ -z $(lg_devices) ]]'; then
                ok "sshd: after logout no loop device on the session's images and no verity device of uxsigned is left"
        else
                notok "sshd: loop or verity devices of the ended ssh session are left (120 s after logout): $(lg_devices | tr '\n' ' ')"
                timeout 20 dmsetup info $(dmsetup table --target verity 2>/dev/null | grep -F " $UXHASH " | cut -d: -f1) 2>&1 | diag
        fi
        lg_journal 8
        say "logins: sshd part took $((SECONDS - t0)) s"
}

logins_main() {
        local t0=$SECONDS
        logins_build
        if logins_setup; then
                logins_su
                logins_sshd
                # shellcheck source=test/vm/guest/homed.sh
                . /usr/lib/sysext-idmap-vmtest/homed.sh
        fi
        say "logins took $((SECONDS - t0)) s"
}
logins_main
