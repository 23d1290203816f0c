#!/usr/bin/env bash
# Cron and time-zone benchmark: cron_next / cron_parse / tz query latency (mean, p50, p99, max).
#
#   bench/cron.sh            (from the repository root; builds a Release tree in build-bench/)
#
# Knobs (environment): OPS (200000 calls per case), OUT (results file).
# Target (issue 5): cron_next well under 10 us for a typical expression.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
OPS="${OPS:-200000}"
OUT="${OUT:-$BUILD/cron-bench.jsonl}"

for tool in cmake pkg-config cc; do
    command -v "$tool" >/dev/null || { echo "cron.sh: $tool is not installed" >&2; exit 1; }
done

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
make -C "$BUILD" -j2 betpipe_core >/dev/null
# shellcheck disable=SC2046
cc -O2 -g -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
    -I"$ROOT/core/include" -I"$ROOT/core/src" "$ROOT/bench/cron/bench_cron.c" \
    "$BUILD/core/libbetpipe_core.a" \
    $(pkg-config --cflags --libs jansson sqlite3 hiredis libcurl zlib libmicrohttpd gsl) \
    -lpthread -ldl -lm -o "$BUILD/bench_cron"

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
echo "# machine: $(nproc) cores, $(uname -sr); $(cc --version | head -1)" | tee -a "$OUT"
"$BUILD/bench_cron" --ops "$OPS" | tee -a "$OUT"
