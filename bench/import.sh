#!/bin/sh
# bench/import.sh - import benchmark of the bundled football-data CSVs.
#
#   bench/import.sh [BUILD_DIR] [--runs N] [--store-runs N]
#
# Builds bench_import and the plugins in BUILD_DIR (default: build-bench, configured as Release
# the first time) and runs it on data/football-data: parse-only figures, then the real import
# (the football_data collector plugin into an empty SQLite store) and a re-import. Prints seconds
# and rows/s. Run it on an otherwise idle machine; it is not part of the test suite.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build-bench"}
[ $# -gt 0 ] && shift
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_WERROR=OFF >/dev/null
fi
cmake --build "$build" --target bench_import collector-football_data -j2 >/dev/null
echo "build: $(grep -E '^CMAKE_BUILD_TYPE' "$build/CMakeCache.txt" | cut -d= -f2), cc: $(${CC:-cc} --version | head -1), sqlite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$build/bench/bench_import" --plugin-dir "$build/lib/betpipe/plugins" "$@" "$root/data/football-data"
