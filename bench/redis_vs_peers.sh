#!/usr/bin/env bash
# betpipe on Redis against Celery 5.2 and BullMQ, side by side, in one run, on one Redis.
#
#   bench/redis_vs_peers.sh           prints one table (median of RUNS runs per configuration)
#
# Every system is measured by the same harness (bench/peers/lib/peerbench.py, written for this
# project - see bench/peers/RESULTS.md for its method): N no-op jobs enqueued one call at a time
# and in batches, drained by one worker process (processing jobs/s = N / (last done - first
# start)), then start latency at a steady RATE jobs/s for DURATION s, worker RSS, CPU and Redis
# commands per job. betpipe's worker is the real daemon (`betpipe daemon`, jobs of the test-only
# bench.rec type, which writes the harness's record file) and its producer is
# bench/peers/betpipe/producer.c over the client API; the Celery and BullMQ sides are the peers'
# scripts. All of them talk to the same redis-server on 127.0.0.1:$REDIS_PORT (started here if
# none answers there, stopped again at the end; persistence off, like the peers' runs).
#
# Knobs: RUNS (1) N (20000) RATE (500) DURATION (10) REDIS_PORT (6390) RESULTS_DIR (a temp dir)
#        BETPIPE_CONFIGS ("2 8": daemon concurrency)  BULLMQ_CONFIGS ("1:remove 8:remove")
#        CELERY_CONFIGS ("solo-1:off prefork-2:off")  SKIP_CELERY=1 / SKIP_BULLMQ=1
# Needs: redis-server/redis-cli, node + npm (bullmq and ioredis are installed into
# bench/peers/bullmq/node_modules), Debian's python3-celery (installed with apt-get if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="$ROOT/bench/peers"
BUILD="${BUILD:-$ROOT/build-bench}"
export RUNS="${RUNS:-1}" N="${N:-20000}" RATE="${RATE:-500}" DURATION="${DURATION:-10}"
export REDIS_PORT="${REDIS_PORT:-6390}"
export RESULTS_DIR="${RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/redis-vs-peers-XXXXXX")}"
BETPIPE_CONFIGS="${BETPIPE_CONFIGS:-2 8}"
BULLMQ_CONFIGS="${BULLMQ_CONFIGS:-1:remove 8:remove}"
CELERY_CONFIGS="${CELERY_CONFIGS:-solo-1:off prefork-2:off}"
PY=/usr/bin/python3

for tool in redis-server redis-cli cmake /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "redis_vs_peers.sh: $tool is missing" >&2; exit 1; }
done

echo "# building betpipe (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 >/dev/null

if [ "${SKIP_CELERY:-0}" != 1 ] && ! $PY -c 'import celery, redis' 2>/dev/null; then
    echo "# installing Debian's python3-celery" >&2
    apt-get install -y -q python3-celery python3-redis >/dev/null
fi
if [ "${SKIP_BULLMQ:-0}" != 1 ] && [ ! -d "$PEERS/bullmq/node_modules/bullmq" ]; then
    echo "# installing bullmq and ioredis (npm)" >&2
    (cd "$PEERS/bullmq" && npm install --no-audit --no-fund >/dev/null)
fi

# One Redis for everyone: the peers' scripts use a server that already answers on the port.
source "$PEERS/lib/common.sh"
start_redis
trap stop_redis EXIT

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(nproc) cores, $(uname -sr), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), load average before: $LOAD_BEFORE" >&2

# betpipe: the real daemon and the client API, on the broker named by REDIS_URL (the harness
# sets it for every system); its own SQLite store (job history) in a scratch data dir.
BP_DATA="$RESULTS_DIR/betpipe-data"
mkdir -p "$BP_DATA"
unset BETPIPE_BROKER_URL BETPIPE_CONFIG
BP_ENV=(--env "BETPIPE_DATA_DIR=$BP_DATA"
        --env "BETPIPE_PLUGIN_DIR=$BUILD/lib/betpipe/plugins:$BUILD/bench/plugins"
        --env "BETPIPE_LOG_LEVEL=warn")
for c in $BETPIPE_CONFIGS; do
    "$PEERS/run_generic.sh" betpipe "daemon c=$c" loop,bulk \
        "exec $BUILD/bench/bench_peer_producer enqueue {mode} {n}" \
        "$BUILD/bin/betpipe daemon --queues default --concurrency default=$c --no-beat" \
        "exec $BUILD/bench/bench_peer_producer latency {rate} {duration}" \
        "${BP_ENV[@]}" >/dev/null
done
if [ "${SKIP_BULLMQ:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    "$PEERS/run_bullmq.sh" $BULLMQ_CONFIGS >/dev/null
fi
if [ "${SKIP_CELERY:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    "$PEERS/run_celery.sh" $CELERY_CONFIGS >/dev/null
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

files=()
for f in betpipe bullmq celery; do
    [ -s "$RESULTS_DIR/$f.jsonl" ] && files+=("$RESULTS_DIR/$f.jsonl")
done
echo
echo "# $(nproc) cores shared with other work: load average $LOAD_BEFORE before, $LOAD_AFTER after; RUNS=$RUNS N=$N, latency at $RATE jobs/s for $DURATION s"
$PY "$PEERS/lib/summarize.py" "${files[@]}"
$PY - "${files[@]}" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for p in sys.argv[1:] for l in open(p) if l.strip()]
def med(peer, path, best=max):
    vals = {}
    for r in rows:
        if r["peer"] != peer:
            continue
        d = r
        for k in path.split("."):
            d = d.get(k, {}) if isinstance(d, dict) else {}
        if isinstance(d, (int, float)):
            vals.setdefault(r["config"], []).append(d)
    meds = [statistics.median(v) for v in vals.values()]
    return best(meds) if meds else None
bp_proc, bq_proc = med("betpipe", "process.jobs_s"), med("bullmq", "process.jobs_s")
bp_bulk = med("betpipe", "enqueue_bulk.jobs_s")
bp_p99 = med("betpipe", "latency.start_p99_ms", min)
print()
print("targets (betpipe's best configuration):")
if bp_proc and bq_proc:
    print("  processing  %8.0f jobs/s = %.1fx BullMQ's best in this run (%.0f)  target >= 4x  %s"
          % (bp_proc, bp_proc / bq_proc, bq_proc, "met" if bp_proc >= 4 * bq_proc else "NOT met"))
if bp_bulk:
    print("  bulk enqueue %7.0f jobs/s  target >= 100,000  %s"
          % (bp_bulk, "met" if bp_bulk >= 100000 else "NOT met"))
if bp_p99 is not None:
    print("  start p99   %8.2f ms at the steady rate  target < 1 ms  %s"
          % (bp_p99, "met" if bp_p99 < 1 else "NOT met"))
EOF
echo
echo "raw results: $RESULTS_DIR"
