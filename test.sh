#!/usr/bin/env bash
# The whole test suite: a warnings-as-errors debug build and an ASan+UBSan build, each running
# every unit and integration test (real redis-server, real HTTP servers, real daemon).
set -euo pipefail
cd "$(dirname "$0")"
jobs="$(nproc)"
run_suite() {
    local dir="$1"; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DBP_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
    (cd "$dir" && ctest --output-on-failure --timeout 900 "${CTEST_ARGS[@]}")
}
CTEST_ARGS=()
[ -n "${BP_TEST_FILTER:-}" ] && CTEST_ARGS+=(-R "$BP_TEST_FILTER")
echo "== debug build (-Werror)"
run_suite build-test
if [ "${BP_SKIP_SANITIZERS:-0}" != 1 ]; then
    echo "== ASan + UBSan build"
    # Criterion forks every test and a sanitizer report in a forked child does not change the
    # test's exit status, so every report goes to a file and any file fails the run.
    reports="$PWD/build-asan/sanitizer-reports"
    rm -rf "$reports" && mkdir -p "$reports"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:log_path=$reports/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
    export BP_TEST_TIMEOUT_MULTIPLIER="${BP_TEST_TIMEOUT_MULTIPLIER:-3}"
    run_suite build-asan -DBP_SANITIZE=address,undefined
    if [ -n "$(ls -A "$reports")" ]; then
        echo "sanitizer reports:"; head -n 60 "$reports"/*; exit 1
    fi
fi
echo "== all tests passed"
