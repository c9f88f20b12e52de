#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build (if needed) and run the libFuzzer harnesses in test/fuzz:
#   tools/fuzz.sh NAME SECONDS      e.g. tools/fuzz.sh fuzz-dissect 60   (the "fuzz-" may be left out)
#   tools/fuzz.sh all SECONDS       every fuzzer, SECONDS each
#   tools/fuzz.sh list              the fuzzer names
# Builds build-fuzz (CC=clang, -Dfuzzers=true, ASan+UBSan), generates the seed corpus into
# build-fuzz/corpus/ with test/fuzz/make-corpus.sh (kept between runs, so it grows), runs each fuzzer
# with -max_total_time=SECONDS -rss_limit_mb=2048 -timeout=10 and prints one line per fuzzer:
#   fuzz-NAME: OK|FAIL executions=N exec/s=N [crash artifact, log]
# Exit status non-zero if any fuzzer crashed, leaked, hit a sanitizer report or a timeout.
# Artifacts (crash-*, leak-*, timeout-*) land in build-fuzz/artifacts/NAME/; reproduce one with
#   build-fuzz/test/fuzz/fuzz-NAME build-fuzz/artifacts/NAME/crash-…
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZERS=(fuzz-dissect fuzz-release fuzz-verity-sig fuzz-idmap fuzz-policy fuzz-image-name fuzz-config fuzz-varlink)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}

usage() {
        echo "usage: $0 NAME|all SECONDS | list" >&2
        exit 2
}

[[ ${1:-} == list ]] && { printf '%s\n' "${FUZZERS[@]}"; exit 0; }
(($# == 2)) || usage
name=$1 seconds=$2
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || usage
if [[ $name == all ]]; then
        targets=("${FUZZERS[@]}")
else
        [[ $name == fuzz-* ]] || name=fuzz-$name
        found=0
        for f in "${FUZZERS[@]}"; do [[ $f == "$name" ]] && found=1; done
        ((found)) || { echo "unknown fuzzer $name (try: $0 list)" >&2; exit 2; }
        targets=("$name")
fi

build() {
        if ! command -v clang >/dev/null; then
                echo "clang is needed for libFuzzer (apt-get install clang libclang-rt-14-dev)" >&2
                return 1
        fi
        if [[ ! -f $BUILD/build.ninja ]]; then
                rm -rf "$BUILD"
                # pam off: its -Wl,--no-undefined does not link against clang's static sanitizer runtime;
                # tests off: the harnesses are all that is needed here.
                CC=clang meson setup -Dfuzzers=true -Dtest_hooks=true -Dtests=false -Dpam=disabled \
                        -Db_sanitize=address,undefined -Db_lundef=false "$BUILD" >"$BUILD.setup.log" 2>&1 ||
                        { cat "$BUILD.setup.log" >&2; return 1; }
                rm -f "$BUILD.setup.log"
        fi
        # a build directory from before the test hooks were an option
        meson configure "$BUILD" -Dtest_hooks=true >/dev/null || return 1
        ninja -C "$BUILD" >/dev/null || { ninja -C "$BUILD" >&2; return 1; }
}

if ! build; then
        echo "fuzzer build failed" >&2
        exit 1
fi

corpus=$BUILD/corpus
if [[ ! -f $corpus/.complete || test/fuzz/make-corpus.sh -nt $corpus/.complete ]]; then
        # keep what earlier runs found, refresh the seeds
        test/fuzz/make-corpus.sh "$corpus.seeds" >/dev/null || { echo "make-corpus.sh failed" >&2; exit 1; }
        for f in "${FUZZERS[@]}"; do
                mkdir -p "$corpus/$f"
                cp -a "$corpus.seeds/$f/." "$corpus/$f/"
        done
        rm -rf "$corpus/certs"
        cp -a "$corpus.seeds/certs" "$corpus/certs"
        rm -rf "$corpus.seeds"
        touch "$corpus/.complete"
fi

export SYSEXT_IDMAP_VERITY_DIRS=$PWD/$corpus/certs
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
for f in "${targets[@]}"; do
        art=$BUILD/artifacts/$f/
        log=$BUILD/artifacts/$f.log
        mkdir -p "$art"
        "$BUILD/test/fuzz/$f" "$corpus/$f" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
                -print_final_stats=1 -artifact_prefix="$art" >"$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -1)
        if ((rc == 0)) && ! grep -qE '^(==[0-9]+==ERROR|SUMMARY: )|runtime error:' "$log"; then
                echo "$f: OK executions=${execs:-?} exec/s=${rate:-?}"
        else
                failed=1
                artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
                echo "$f: FAIL (exit $rc) executions=${execs:-?} exec/s=${rate:-?} artifact=${artifact:-none} log=$log"
                grep -aE 'property violated|ERROR: |runtime error:|SUMMARY:' "$log" | head -5 | sed 's/^/    /'
        fi
done
exit $failed
