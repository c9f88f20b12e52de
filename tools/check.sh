#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build from scratch and run every test, on Debian 12. As root:  tools/check.sh
# (an ordinary user: sudo tools/check.sh or su -c tools/check.sh; without root it installs nothing,
# stopping if a package is missing, and skips the tests that need loop devices and mounts).
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
        python3 openssl valgrind btrfs-progs xfsprogs
        clang libclang-rt-14-dev
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
        setup=(meson setup --wipe -Dtest_hooks=true build)
else
        rm -rf build
        setup=(meson setup -Dtest_hooks=true build)
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

read -r n_pass n_fail n_skip < <(python3 tools/testlog-counts.py build/meson-logs/testlog.json)

# ---- default build: what `meson install` installs has no test hooks ----------------------------
# The suite runs a -Dtest_hooks=true build; an installed system gets the default. Build that too and
# check that it compiles, says -test-hooks, and that the PAM module imports no getenv at all and
# names no SYSEXT_IDMAP_* variable (library code running in su must read no environment).
default_build() {
        local mod=build-default/src/pam/pam_sysext_idmap.so bin=build-default/src/sysext-idmap/sysext-idmap
        rm -rf build-default
        if ! meson setup build-default >/dev/null || ! ninja -C build-default >/dev/null; then
                echo "FAIL: default-build: meson setup/ninja without -Dtest_hooks failed"
                n_fail=$((n_fail + 1))
                return
        fi
        if [[ $("$bin" --version) == *"-test-hooks"* ]]; then
                echo "PASS: default-build: --version says -test-hooks"; n_pass=$((n_pass + 1))
        else
                echo "FAIL: default-build: --version does not say -test-hooks: $("$bin" --version | tr '\n' ' ')"; n_fail=$((n_fail + 1))
        fi
        if [[ ! -f $mod ]]; then
                echo "SKIP: default-build: no PAM module built (libpam missing)"; n_skip=$((n_skip + 1))
        elif nm -D --undefined-only "$mod" | grep -E '\b(secure_)?getenv\b' >/dev/null || strings "$mod" | grep 'SYSEXT_IDMAP_' >/dev/null; then
                echo "FAIL: default-build: $mod imports getenv or names a SYSEXT_IDMAP_ variable:"
                nm -D --undefined-only "$mod" | grep -E 'getenv' || true
                strings "$mod" | grep 'SYSEXT_IDMAP_' | head -n 5 || true
                n_fail=$((n_fail + 1))
        else
                echo "PASS: default-build: the PAM module reads no environment and has no test hooks"; n_pass=$((n_pass + 1))
        fi
}
echo "=== default build (no test hooks): build-default/"
default_build

# ---- VM test (test/vm/run.sh) ------------------------------------------------------------------
# sysext-idmap under systemd as PID 1 on Debian's own kernel (6.1: kernel dm-verity, GPT scanning,
# the old overlay path), in qemu with TCG, in a guest built by mkosi (mkosi.conf). It prints each
# check; its counts are added to the closing line. On CI (CI=true) or with SYSEXT_IDMAP_VM=1 the
# packages it needs are installed; elsewhere it is skipped, with the reason, when they are
# missing. SYSEXT_IDMAP_VM=0 skips it. SYSEXT_IDMAP_VM_BUDGET (s, default 2700) bounds its wall time: above run.sh's own limits
# (qemu: 420 s without output, 1800 s at most; mkosi), so that run.sh reports a harness timeout itself.
VM_PACKAGES=(qemu-system-x86 linux-image-amd64 mkosi debootstrap systemd-container busybox-static
             cpio kmod e2fsprogs)
vm_pass=0 vm_fail=0 vm_skip=0
vm_test() {
        local p missing=() out rc line
        if [[ ${SYSEXT_IDMAP_VM:-} == 0 ]]; then
                echo "SKIP: vm: disabled by SYSEXT_IDMAP_VM=0"
                vm_skip=1
                return
        fi
        if [[ $(id -u) -ne 0 ]]; then
                echo "SKIP: vm: needs root"
                vm_skip=1
                return
        fi
        if [[ ${CI:-} == true || ${SYSEXT_IDMAP_VM:-} == 1 ]]; then
                for p in "${VM_PACKAGES[@]}"; do
                        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
                                missing+=("$p")
                        fi
                done
                if ((${#missing[@]} > 0)); then
                        echo "vm: installing: ${missing[*]}"
                        # INITRD=No: the guest boots the kernel with an initrd of its own.
                        if ! { apt-get update -qq &&
                               DEBIAN_FRONTEND=noninteractive INITRD=No apt-get install -y -qq \
                                        --no-install-recommends "${missing[@]}" >/dev/null; }; then
                                echo "FAIL: vm: cannot install ${missing[*]}"
                                vm_fail=1
                                return
                        fi
                fi
        fi
        out=$(mktemp)
        rc=0
        timeout -k 30 "${SYSEXT_IDMAP_VM_BUDGET:-2700}" bash test/vm/run.sh 2>&1 | tee "$out" || rc=$?
        line=$(grep -E '^vm: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n1 || true)
        rm -f "$out"
        if [[ -z $line ]]; then
                echo "FAIL: vm: test/vm/run.sh ended without its summary (exit $rc; over the budget of ${SYSEXT_IDMAP_VM_BUDGET:-2700} s?)"
                vm_fail=1
                return
        fi
        read -r vm_pass vm_fail vm_skip < <(echo "$line" | sed -E 's/^vm: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')
        if [[ ${CI:-} == true ]] && ((vm_skip > 0)); then
                echo "FAIL: vm: skipped on CI, where it must run"
                vm_fail=$((vm_fail + 1))
        fi
        if ((rc != 0 && rc != 77 && vm_fail == 0)); then
                echo "FAIL: vm: test/vm/run.sh exited with $rc"
                vm_fail=1
        fi
}
echo "=== VM test (Debian kernel, systemd as PID 1): test/vm/run.sh"
vm_t0=$SECONDS
vm_test
echo "=== VM test: $vm_pass passed, $vm_fail failed, $vm_skip skipped in $((SECONDS - vm_t0)) s"
n_pass=$((n_pass + vm_pass)) n_fail=$((n_fail + vm_fail)) n_skip=$((n_skip + vm_skip))
# ---- end of the VM test ------------------------------------------------------------------------

# ---- BEGIN sanitizers: the whole meson test suite again, built with ASan+UBSan ----
# Counted into the summary like the normal run (each test once more). Every sanitizer report goes to
# build-asan/sanitizer-logs/ as well (log_path): the integration tests run the binary and its forked
# helpers, often expecting them to fail, so an ASan abort in a child could otherwise pass unnoticed;
# any report file counts as one more failed test ("sanitizer-reports"). CHECK_SANITIZERS=0 skips.
sanitizer_suite() {
        local logs=$PWD/build-asan/sanitizer-logs a f s
        rm -rf build-asan
        if ! meson setup -Dtest_hooks=true -Db_sanitize=address,undefined -Db_lundef=false build-asan >/dev/null || ! ninja -C build-asan >/dev/null; then
                echo "sanitizers: build-asan failed" >&2
                n_fail=$((n_fail + 1))
                return
        fi
        mkdir -p "$logs"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$logs/asan \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan \
                meson test -C build-asan --print-errorlogs || true
        if [[ ! -s build-asan/meson-logs/testlog.json ]]; then
                echo "sanitizers: meson test produced no testlog.json" >&2
                n_fail=$((n_fail + 1))
                return
        fi
        read -r a f s < <(python3 tools/testlog-counts.py build-asan/meson-logs/testlog.json "sanitizers: ")
        # gcc's combined ASan+UBSan runtime ignores log_path for UBSan reports: those only reach stderr,
        # which meson keeps for every test (passing ones too) in testlog.txt.
        if grep -aqE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' build-asan/meson-logs/testlog.txt; then
                echo "sanitizers: sanitizer reports in build-asan/meson-logs/testlog.txt:" >&2
                grep -aE -A3 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)' build-asan/meson-logs/testlog.txt | head -n 40 >&2
                touch "$logs/reports-in-testlog"
        fi
        if compgen -G "$logs/*" >/dev/null; then
                echo "sanitizers: FAIL sanitizer-reports: $(ls "$logs" | wc -l) report file(s) in $logs:" >&2
                head -n 30 "$logs"/* >&2
                f=$((f + 1))
        else
                a=$((a + 1))
                echo "sanitizers: ok sanitizer-reports (no ASan/UBSan report from any process)"
        fi
        echo "sanitizers: $a passed, $f failed, $s skipped (ASan+UBSan suite)"
        n_pass=$((n_pass + a)) n_fail=$((n_fail + f)) n_skip=$((n_skip + s))
}
if [[ ${CHECK_SANITIZERS:-1} != 0 ]]; then
        sanitizer_suite
fi
# ---- END sanitizers ----

# ---- BEGIN fuzz: each libFuzzer harness for CHECK_FUZZ_SECONDS (default 45) ----
# One test per fuzzer; tools/fuzz.sh prints executions and exec/s from libFuzzer's final stats.
# Skipped (each fuzzer counted as skipped) without clang; CHECK_FUZZ_SECONDS=0 skips too.
fuzz_seconds=${CHECK_FUZZ_SECONDS:-45}
mapfile -t fuzzers < <(tools/fuzz.sh list)
if [[ $fuzz_seconds == 0 ]] || ! command -v clang >/dev/null; then
        echo "fuzz: skipped (${#fuzzers[@]} fuzzers; needs clang and CHECK_FUZZ_SECONDS > 0)"
        n_skip=$((n_skip + ${#fuzzers[@]}))
else
        for f in "${fuzzers[@]}"; do
                if tools/fuzz.sh "$f" "$fuzz_seconds"; then
                        n_pass=$((n_pass + 1))
                else
                        n_fail=$((n_fail + 1))
                fi
        done
fi
# ---- END fuzz ----

summary "$n_pass" "$n_fail" "$n_skip"
((n_fail == 0))
