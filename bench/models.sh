#!/usr/bin/env bash
# bench/models.sh - model benchmarks: Dixon-Coles fit time on one season (median of many cold
# fits) and the walk-forward evaluation of every model on the Premier League 2012-13 .. 2023-24
# (refit every match day, only earlier days' matches used), scored with RPS, log loss, Brier and
# accuracy next to Pinnacle's closing line after margin removal, on the same matches.
#
# Builds a Release tree in build-bench/ (override with BUILD_DIR) and passes any arguments to
# bench_models (see bench/models/bench_models.c), e.g.
#     bench/models.sh --fit-runs 500 --boot 5000
#     bench/models.sh --models dixon_coles,elo --fit-runs 0
# Takes about a minute on the 2-core box; run it once, not in a loop.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF >/dev/null
make -C "$build" -j2 bench_models >/dev/null
echo "betpipe model benchmark - $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)"
exec "$build/bench/bench_models" --data "$root/data/football-data/E0" "$@"
