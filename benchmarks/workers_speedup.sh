#!/usr/bin/env bash
# Wall time of the 16-trial benchmark grid with 1 and with 2 local workers, each on fresh stores.
# Usage: benchmarks/workers_speedup.sh [DATA_DIR] [ROUNDS]   (results in benchmarks/work/)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-${STUDY_DATA_DIR:-../shared/data/mnist}}"
ROUNDS="${2:-1}"
PYTHON="${PYTHON:-.venv/bin/python}"
WORK="benchmarks/work"
mkdir -p "$WORK"
for round in $(seq "$ROUNDS"); do
  for workers in 1 2; do
    dir="$WORK/w${workers}-r${round}"
    rm -rf "$dir" && mkdir -p "$dir"
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    "$PYTHON" -m study run benchmarks/workers_16.yaml --workers "$workers" --data-dir "$DATA_DIR" --no-report \
      --tracking-uri "sqlite:///$PWD/$dir/mlflow.db" --storage "sqlite:///$PWD/$dir/optuna.db" > "$dir/log" 2>&1
    end=$(date +%s.%N)
    printf 'round %s, %s worker(s): %.1f s (load before: %s)\n' "$round" "$workers" \
      "$(echo "$end - $start" | bc)" "$load" | tee -a "$WORK/results.txt"
  done
done
