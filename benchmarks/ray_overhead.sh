#!/usr/bin/env bash
# Ray's overhead on one machine: the same spec, one `study run` each, with 2 local worker processes and
# with 2 Ray actors on a local Ray instance the command starts (its start-up included), on fresh SQLite
# stores; then whether both recorded the same results. Needs the Ray extra (make install-ray).
# Usage: benchmarks/ray_overhead.sh [SPEC] [DATA_DIR] [ROUNDS]   (logs and results in benchmarks/work/ray/)
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC="${1:-ablations/quick.yaml}"
DATA_DIR="${2:-${STUDY_DATA_DIR:-../shared/data/mnist}}"
ROUNDS="${3:-2}"
PYTHON="${PYTHON:-.venv/bin/python}"
WORK="benchmarks/work/ray"
mkdir -p "$WORK"
echo "$(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; spec $SPEC" \
  | tee -a "$WORK/results.txt"
for round in $(seq "$ROUNDS"); do
  for mode in local ray; do
    dir="$WORK/$mode-r$round"
    rm -rf "$dir" && mkdir -p "$dir"
    args=(--workers 2)
    [ "$mode" = ray ] && args+=(--ray)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    "$PYTHON" -m study run "$SPEC" "${args[@]}" --data-dir "$DATA_DIR" --no-report \
      --tracking-uri "sqlite:///$PWD/$dir/mlflow.db" --storage "sqlite:///$PWD/$dir/optuna.db" > "$dir/log" 2>&1
    end=$(date +%s.%N)
    startup=$(grep -o 'started a local Ray instance.*(\([0-9.]*\) s)' "$dir/log" | grep -o '[0-9.]* s)$' || true)
    printf 'round %s, %-5s: %.1f s (load before: %s)%s\n' "$round" "$mode" "$(echo "$end - $start" | bc)" "$load" \
      "${startup:+; Ray start-up ${startup%)}}" | tee -a "$WORK/results.txt"
  done
  "$PYTHON" - "$WORK/local-r$round/mlflow.db" "$WORK/ray-r$round/mlflow.db" "$(basename "$SPEC" .yaml)" <<'PY' \
    | tee -a "$WORK/results.txt"
import sys

import mlflow

def results(db: str, study: str) -> dict[str, tuple[float, float]]:
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=[study], filter_string="tags.study_role = 'trial'",
                              output_format="list")
    return {r.data.tags["trial_key"]: (r.data.metrics["final_val_accuracy"], r.data.metrics["test_accuracy"])
            for r in runs if r.info.status == "FINISHED"}

local, ray = results(sys.argv[1], sys.argv[3]), results(sys.argv[2], sys.argv[3])
same = sum(local[k] == ray.get(k) for k in local)
print(f"  results: {same} of {len(local)} trials bit-identical between local and Ray ({len(ray)} on Ray)")
PY
done
