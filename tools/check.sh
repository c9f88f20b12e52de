#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build from scratch and run every test. Run as root on Debian 12:  sudo tools/check.sh
# The last line of output is always "N passed, N failed, N skipped"; exit status 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build dependencies and the tools the tests use. (In bookworm systemd-repart ships in the
# `systemd` package itself; there is no separate systemd-repart package.)
PACKAGES=(
        meson ninja-build pkg-config gcc
        libsystemd-dev libcryptsetup-dev libblkid-dev libmount-dev libssl-dev libjson-c-dev
        libpam0g-dev
        squashfs-tools erofs-utils e2fsprogs cryptsetup-bin fdisk util-linux systemd uidmap
        python3 openssl valgrind
)

summary() {
        echo "$1 passed, $2 failed, $3 skipped"
}

install_missing() {
        local p missing=()
        for p in "${PACKAGES[@]}"; do
                if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
                        missing+=("$p")
                fi
        done
        ((${#missing[@]} > 0)) || return 0
        if [[ $(id -u) -ne 0 ]]; then
                echo "missing packages (run as root to install them): ${missing[*]}" >&2
                return 1
        fi
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

if ! install_missing; then
        summary 0 1 0
        exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
        echo "note: not root; tests that need loop devices and mounts will be skipped" >&2
fi

if [[ -d build/meson-private ]]; then
        setup=(meson setup --wipe build)
else
        rm -rf build
        setup=(meson setup build)
fi
if ! "${setup[@]}" || ! ninja -C build; then
        echo "build failed" >&2
        summary 0 1 0
        exit 1
fi

rm -f build/meson-logs/testlog.json
meson test -C build --print-errorlogs || true

if [[ ! -s build/meson-logs/testlog.json ]]; then
        echo "meson test produced no build/meson-logs/testlog.json" >&2
        summary 0 1 0
        exit 1
fi

# One JSON object per test; result is OK, FAIL, SKIP, TIMEOUT, EXPECTEDFAIL, UNEXPECTEDPASS, ERROR.
read -r n_pass n_fail n_skip < <(python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
summary "$n_pass" "$n_fail" "$n_skip"
((n_fail == 0))
