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
# Then (EVALUATE=0 skips it) the same walk-forward through the product: the bundled history
# imported into a scratch store and `betpipe models evaluate` over E0 2012-13 .. 2023-24 with
# dixon_coles, elo, pi_rating and their blend, timed.
# Takes a minute or two on the 2-core box; run it once, not in a loop.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
make -C "$build" -j2 >/dev/null
echo "betpipe model benchmark - $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)"
"$build/bin/bench_models" --data "$root/data/football-data/E0" "$@"
if [ "${EVALUATE:-1}" != 0 ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    BP="$build/bin/betpipe --data-dir $scratch --plugin-dir $build/lib/betpipe/plugins"
    $BP run data.import --arg "source=$root/data/football-data" --wait >/dev/null
    echo
    echo "== betpipe models evaluate --league E0 --from 2012-13 --to 2023-24 (from the store)"
    start=$(date +%s.%N)
    $BP models evaluate --league E0 --from 2012-13 --to 2023-24 \
        --models dixon_coles,elo,pi_rating,ensemble --boot 2000 2>/dev/null | sed -n '1,12p'
    end=$(date +%s.%N)
    python3 -c "print('models evaluate: %.1f s wall (the store read, 4 walk-forwards, bootstrap)' % ($end - $start))"
fi
