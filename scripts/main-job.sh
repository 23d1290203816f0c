#!/usr/bin/env bash
# The main job on the embedded default, as a user would run it by hand: import the bundled
# football-data.co.uk history into the store through data.import (the football_data collector,
# reading file:// like any other source), show what it stored; train Dixon-Coles for the Premier
# League on the seasons before 2024-25 (ml.train), predict the opening weekend of 2024-25 with it
# (ml.predict) next to what happened, and evaluate the models walk-forward on 2023-24 against
# the bookmakers (models evaluate); then back the store up.
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
echo "== train Dixon-Coles for E0 on every season before 2024-25 (ml.train)"
TRAIN="$DATA_DIR/last-train.json"
if ! $BP run ml.train --arg model=dixon_coles --arg league=E0 --arg until=2024-08-01 --wait --json >"$TRAIN"; then
    cat "$TRAIN"
    exit 1
fi
python3 - "$TRAIN" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
m = r["metrics"]
print(r["summary"])
print("home advantage %.4f, rho %.4f, %d teams, %d BFGS2 iterations; in-sample RPS %.4f"
      % (m["home"], m["rho"], m["n_teams"], m["iterations"], m["in_sample"]["rps"]))
EOF
echo "== predict the opening weekend of 2024-25 with it (ml.predict), next to the results"
PRED="$DATA_DIR/last-predict.json"
if ! $BP run ml.predict --arg league=E0 --arg from=2024-08-16 --arg to=2024-08-20 --arg model=dixon_coles --wait --json >"$PRED"; then
    cat "$PRED"
    exit 1
fi
python3 - "$PRED" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
print("%-16s %-28s %6s %6s %6s %9s %6s %6s %6s" % ("kickoff (UTC)", "match", "home", "draw", "away",
                                                 "exp goals", "O2.5", "BTTS", "result"))
for p in r["predictions"]:
    print("%-16s %-28s %6.3f %6.3f %6.3f %4.2f-%4.2f %6.3f %6.3f %6s"
          % (p["kickoff"][:16].replace("T", " "), p["home"] + " v " + p["away"], p["p_home"],
             p["p_draw"], p["p_away"], p["exp_home_goals"], p["exp_away_goals"], p["over_2_5"],
             p["btts_yes"], "%d-%d" % (p["home_goals"], p["away_goals"])))
for s in r["skipped"]:
    print("not predicted: %s v %s: %s" % (s["home"], s["away"], s["reason"]))
print(r["summary"])
EOF
echo "== walk-forward evaluation of 2023-24 against the bookmakers (models evaluate)"
$BP models evaluate --league E0 --from 2023-24 --models dixon_coles,elo,pi_rating,ensemble --boot 500 2>/dev/null
echo "== models in the store"
$BP models list --all
echo "== back up the store (online backup, verified)"
$BP run maint.backup_db --wait
echo "== queues"
$BP status
