#!/bin/sh
# Redis broker figures: starts its own redis-server on a unix socket in a temp dir (no TCP
# port, no persistence), runs build/bench/broker_redis_bench against it, stops it.
#   bench/broker_redis.sh [BUILD_DIR] [N] [THREADS] [BATCH] [SHARED]
set -eu
build=${1:-build}
n=${2:-20000}
threads=${3:-2}
batch=${4:-16}
shared=${5:-0}
bin="$build/bench/broker_redis_bench"
[ -x "$bin" ] || { echo "build first: $bin is missing" >&2; exit 1; }
dir=$(mktemp -d /tmp/bp-bench-redis-XXXXXX)
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" \
    --save "" --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"
cleanup() {
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    sleep 0.2
    rm -rf "$dir"
}
trap cleanup EXIT
i=0
until redis-cli -s "$dir/redis.sock" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.05
done
"$bin" "unix://$dir/redis.sock" "$n" "$threads" "$batch" "$shared"
