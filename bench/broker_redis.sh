#!/usr/bin/env bash
# Redis broker benchmark (issue 3, broker level): enqueue one by one and in batches of 1,000,
# drain with exchange (ack + lease in one round trip), Redis commands and CPU per job, start
# latency at a steady 500 jobs/s - against a private redis-server on a unix socket in a temp dir
# (no TCP port, no persistence).
#
#   bench/broker_redis.sh            builds a Release tree in build-bench/ and prints the figures
#   N=20000 THREADS=2 BATCH=16 SHARED=1 bench/broker_redis.sh
#
# SHARED=1: the drain threads share one broker handle, as a daemon's pool threads do.
# For scale (../shared/bench-peers/RESULTS.md, this machine): BullMQ 4,800-12,400 no-op jobs/s,
# bulk enqueue ~22,000/s, p99 start latency 2.8-3.5 ms. Daemon-level figures (pool, plugins)
# and the side-by-side run with Celery and BullMQ come with the daemon integration.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build-bench}"
N="${N:-20000}"; THREADS="${THREADS:-2}"; BATCH="${BATCH:-16}"; SHARED="${SHARED:-1}"
for tool in redis-server redis-cli cmake; do
    command -v "$tool" >/dev/null || { echo "broker_redis.sh: $tool is not installed" >&2; exit 1; }
done
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 --target bench_broker_redis >/dev/null

DIR="$(mktemp -d "${TMPDIR:-/tmp}/bp-bench-redis-XXXXXX")"
SOCK="$DIR/redis.sock"
redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$DIR" --logfile "$DIR/redis.log" --daemonize no &
REDIS_PID=$!
cleanup() { kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do
    redis-cli -s "$SOCK" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -s "$SOCK" ping >/dev/null
echo "# $(nproc) cores, $(uname -sr), $(redis-server --version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
"$BUILD/bench/bench_broker_redis" "unix://$SOCK" "$N" "$THREADS" "$BATCH" "$SHARED"
