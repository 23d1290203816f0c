#!/usr/bin/env bash
# Engine benchmark (issue 2): enqueue rate (one by one and bulk), no-op processing rate, start
# latency at a steady 500 jobs/s, daemon RSS - on the embedded SQLite broker.
#
#   bench/engine.sh                 builds a Release tree in build-bench/ and prints the figures
#   N=20000 RATE=500 DURATION=10 CONCURRENCY="1 2 4" RUNS=3 bench/engine.sh
#
# For scale (../shared/bench-peers/RESULTS.md, this machine): Celery 5.2 on Redis processes
# 900-1,600 no-op jobs/s with p99 start latency 1.4-3.5 ms; BullMQ on Redis 4,800-12,400.
# Targets for the embedded broker: >= 10,000 jobs/s processed, p99 start latency < 5 ms.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
N="${N:-20000}"; RATE="${RATE:-500}"; DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-2 4}"; RUNS="${RUNS:-1}"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 >/dev/null
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
for c in $CONCURRENCY; do
    for run in $(seq 1 "$RUNS"); do
        dir="$(mktemp -d /tmp/bench-engine-XXXXXX)"
        echo "## concurrency $c, run $run"
        "$BUILD/bench/bench_engine" --betpipe "$BUILD/bin/betpipe" \
            --plugin-dir "$BUILD/lib/betpipe/plugins:$BUILD/bench/plugins" --data-dir "$dir" \
            --n "$N" --rate "$RATE" --duration "$DURATION" --concurrency "$c" ${BENCH_JSON:+--json}
        rm -rf "$dir"
    done
done
