#!/usr/bin/env bash
# The main job on the embedded default, as a user would run it by hand: import the bundled
# football-data.co.uk history into the store through data.import (the football_data collector,
# reading file:// like any other source), show what it stored, then back the store up.
set -euo pipefail
DATA_DIR="$1"
BP="./build/bin/betpipe --data-dir $DATA_DIR"
SOURCE="file://$PWD/data/football-data"
mkdir -p "$DATA_DIR"
REPORT="$DATA_DIR/last-import.json"

echo "== main job: import the bundled history ($SOURCE)"
if ! $BP run data.import --arg "source=$SOURCE" --wait --json >"$REPORT"; then
    cat "$REPORT"
    exit 1
fi
python3 - "$REPORT" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))
r = job["result"]
def c(x): return "%d/%d/%d" % (x["inserted"], x["updated"], x["unchanged"])
print("%-16s %-8s %5s %18s %24s %8s" % ("file", "season", "rows", "matches new/upd/same",
                                          "odds new/upd/same", "rejected"))
for f in r["per_file"]:
    print("%-16s %-8s %5d %18s %24s %8d" % (f["file"], f["season"], f["rows"], c(f["matches"]),
                                            c(f["odds"]), f["rejected"]))
print("%s in %.2f s (job %s)" % (r["summary"], job["runtime_ms"] / 1000.0, job["id"]))
if r.get("dropped_quotes"):
    print("%d price cells left out (0 or below 1.0 in the files), e.g. %s"
          % (r["dropped_quotes"], r["dropped"][0]))
EOF
echo "== back up the store (online backup, verified)"
$BP run maint.backup_db --wait
echo "== queues"
$BP status
