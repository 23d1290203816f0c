#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the main job on the embedded default
# (SQLite broker, in-memory cache, bundled real data; no Redis, no API keys).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBP_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
DATA_DIR="${BETPIPE_DATA_DIR:-$PWD/var/demo}"
echo "== betpipe built; instance data in $DATA_DIR"
./build/bin/betpipe --data-dir "$DATA_DIR" plugins | grep -E '^[a-z_]+ [0-9]' || true
./scripts/main-job.sh "$DATA_DIR"
if [ -n "${SUDO_USER:-}" ]; then
    chown -R "$SUDO_USER": build var 2>/dev/null || true
fi
