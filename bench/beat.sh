#!/usr/bin/env bash
# Beat benchmark (issue 5): how late a job is enqueued after its slot, p50 / p99 / max, with
# every-second entries fired by several daemons at once on the embedded SQLite broker.
#
#   bench/beat.sh                                builds a Release tree in build-bench/
#   ENTRIES=10 DURATION=30 DAEMONS=2 RUNS=1 bench/beat.sh
#   BROKER=unix:///path/redis.sock bench/beat.sh      the same on a Redis broker
#
# Target: p99 < 100 ms. Figures are printed, never asserted (tests do not time things).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
ENTRIES="${ENTRIES:-10}"; DURATION="${DURATION:-30}"; DAEMONS="${DAEMONS:-2}"; RUNS="${RUNS:-1}"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 >/dev/null 2>"$BUILD/beat-build.log" || { cat "$BUILD/beat-build.log"; exit 1; }
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
for run in $(seq 1 "$RUNS"); do
    dir="$(mktemp -d /tmp/bench-beat-XXXXXX)"
    echo "## run $run"
    "$BUILD/bench/bench_beat" --betpipe "$BUILD/bin/betpipe" \
        --plugin-dir "$BUILD/lib/betpipe/plugins" --data-dir "$dir" \
        --entries "$ENTRIES" --duration "$DURATION" --daemons "$DAEMONS" \
        ${BROKER:+--broker "$BROKER"}
    rm -rf "$dir"
done
