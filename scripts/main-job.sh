#!/usr/bin/env bash
# The main job on the embedded default, as a user would run it by hand.
set -euo pipefail
DATA_DIR="$1"
BP="./build/bin/betpipe --data-dir $DATA_DIR"
echo "== main job: back up the store (online backup, verified)"
$BP run maint.backup_db --wait
echo "== queues"
$BP status
