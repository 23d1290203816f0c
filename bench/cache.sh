#!/usr/bin/env bash
# Cache hit-path benchmark: cache_get / cache_set ops/s and p50/p99 latency for the memory and
# Redis backends, beside redis-benchmark GET/SET against the same redis-server (unix socket) in
# the same run - the physical limit the Redis backend is measured against.
#
#   bench/cache.sh            (from the repository root; builds a Release tree in build-bench/)
#
# Knobs (environment): MEM_OPS (200000 per thread), REDIS_OPS (40000 in total per run),
# KEYS (10000), VALUE_BYTES (100), MEM_THREADS ("1 2"), REDIS_CONC ("1 2 4"), OUT (results file).
# Targets (issue 4): memory get p99 < 5 us; Redis get p99 < 200 us over a unix socket and within
# 1.5x of redis-benchmark's per-request latency at the same concurrency.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
MEM_OPS="${MEM_OPS:-200000}"
REDIS_OPS="${REDIS_OPS:-40000}"
KEYS="${KEYS:-10000}"
VALUE_BYTES="${VALUE_BYTES:-100}"
MEM_THREADS="${MEM_THREADS:-1 2}"
REDIS_CONC="${REDIS_CONC:-1 2 4}"
OUT="${OUT:-$BUILD/cache-bench.jsonl}"

for tool in redis-server redis-cli redis-benchmark cmake pkg-config cc; do
    command -v "$tool" >/dev/null || { echo "cache.sh: $tool is not installed" >&2; exit 1; }
done

# ---- build (Release, no tests) -------------------------------------------------------------
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
make -C "$BUILD" -j2 betpipe_core >/dev/null
# shellcheck disable=SC2046
cc -O2 -g -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
    -I"$ROOT/core/include" -I"$ROOT/core/src" "$ROOT/bench/cache/bench_cache.c" \
    "$BUILD/core/libbetpipe_core.a" \
    $(pkg-config --cflags --libs jansson sqlite3 hiredis libcurl zlib libmicrohttpd gsl) \
    -lpthread -ldl -lm -o "$BUILD/bench_cache"

# ---- one redis-server on a unix socket in a temp dir ---------------------------------------
DIR="$(mktemp -d "${TMPDIR:-/tmp}/bp-cache-bench-XXXXXX")"
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

: >"$OUT"
echo "# machine: $(nproc) cores, $(uname -sr); $(redis-server --version | cut -d' ' -f3)" | tee -a "$OUT"

# ---- memory backend ------------------------------------------------------------------------
for t in $MEM_THREADS; do
    "$BUILD/bench_cache" --backend memory --threads "$t" --ops "$MEM_OPS" --keys "$KEYS" \
        --value-bytes "$VALUE_BYTES" --label "memory-t$t" 2>/dev/null | tee -a "$OUT"
done

# ---- Redis backend and redis-benchmark, same server, same concurrency -----------------------
for c in $REDIS_CONC; do
    redis-cli -s "$SOCK" flushall >/dev/null
    "$BUILD/bench_cache" --backend redis --url "unix://$SOCK" --threads "$c" \
        --ops $((REDIS_OPS / c)) --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
        --label "redis-c$c" 2>/dev/null | tee -a "$OUT"
    blob=$(tail -n1 "$OUT" | sed 's/.*"blob_bytes":\([0-9]*\).*/\1/')
    redis-cli -s "$SOCK" flushall >/dev/null
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    #      "p99_latency_ms","max_latency_ms"
    redis-benchmark -s "$SOCK" -t set,get -n "$REDIS_OPS" -c "$c" -d "$blob" -r "$KEYS" --csv \
        2>/dev/null | tr -d '"' | awk -F, -v c="$c" '$1 == "SET" || $1 == "GET" {
            printf("{\"label\":\"redis-benchmark-c%s\",\"backend\":\"redis-benchmark\",\"op\":\"%s\",\"threads\":%s,\"ops_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
                   c, tolower($1), c, $2, $5 * 1000, $7 * 1000, $8 * 1000) }' | tee -a "$OUT"
done

# ---- summary --------------------------------------------------------------------------------
echo
echo "summary (targets: memory get p99 < 5 us; redis get p99 < 200 us and <= 1.5x redis-benchmark)"
awk '
function field(line, name,   re, m) {
    re = "\"" name "\":\"?[^,}\"]*"
    if (match(line, re)) { m = substr(line, RSTART, RLENGTH); sub(/.*:"?/, "", m); return m }
    return ""
}
/^\{/ {
    b = field($0, "backend"); op = field($0, "op"); t = field($0, "threads")
    p50[b, op, t] = field($0, "p50_us"); p99[b, op, t] = field($0, "p99_us")
    ops[b, op, t] = field($0, "ops_per_s"); seen[b, t] = 1
    printf("  %-16s %-3s c=%-2s %10s ops/s  p50 %8s us  p99 %8s us\n", b, op, t, ops[b, op, t], p50[b, op, t], p99[b, op, t])
}
END {
    for (k in seen) {
        split(k, parts, SUBSEP); b = parts[1]; t = parts[2]
        if (b == "memory")
            printf("  memory get p99 (c=%s): %s us -> %s\n", t, p99[b, "get", t], (p99[b, "get", t] + 0 < 5) ? "meets target" : "MISSES target")
        if (b == "redis" && (("redis-benchmark", "get", t) in p99)) {
            rb50 = p50["redis-benchmark", "get", t]; rb99 = p99["redis-benchmark", "get", t]
            printf("  redis get c=%s: p50 %s us vs redis-benchmark %s us (x%.2f); p99 %s us vs %s us (x%.2f); p99 < 200 us: %s\n",
                   t, p50[b, "get", t], rb50, (rb50 > 0 ? p50[b, "get", t] / rb50 : 0),
                   p99[b, "get", t], rb99, (rb99 > 0 ? p99[b, "get", t] / rb99 : 0),
                   (p99[b, "get", t] + 0 < 200) ? "yes" : "NO")
        }
    }
}' "$OUT"
echo "results: $OUT"
