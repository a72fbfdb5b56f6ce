"""The tuning stage of a `tune_each_arm` study with each executor, in one run: trial-epochs per second.

    python benchmarks/tune_each_arm.py [--data-dir DIR] [--spec ablations/lesson_fair.yaml] [--workers 2]
                                       [--executors keras,fused] [--epochs 2] [--train-subset 10000] [--repeat 1]

For each executor (interleaved when repeated, so the machine's other load hits both alike):
`python -m study run` on fresh stores of the spec, cut to the tuning stage's measure (its `epochs` and
`train_subset` set here, `compare_fixed: false`, one study seed), exactly as a user runs it. The tuning
stage's wall time is read from MLflow (first tuning run's start to last one's end), its trial-epochs
from each run's `epochs_run`. Writes benchmarks/results/<date>-<host>-tune-each-arm.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.tracking.environment import machine, versions  # noqa: E402


def derived_spec(spec: Path, epochs: int, subset: int, workdir: Path) -> Path:
    raw = yaml.safe_load(spec.read_text())
    raw.update(epochs=epochs, train_subset=subset, seeds=raw["seeds"][:1])
    raw.pop("confirm", None)
    raw["tune_each_arm"] = {**raw["tune_each_arm"], "compare_fixed": False}
    if raw.get("base", {}).get("warmup_epochs", 0) >= epochs:
        raw["base"]["warmup_epochs"] = max(0, epochs - 1)
    out = workdir / spec.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def run(spec: Path, name: str, executor: str, workers: int, data_dir: str, workdir: Path, attempt: int) -> dict:
    store = workdir / f"mlflow-{executor}-{attempt}.db"
    command = [sys.executable, "-m", "study", "run", str(spec), "--executor", executor, "--workers", str(workers),
               "--data-dir", data_dir, "--tracking-uri", f"sqlite:///{store}",
               "--storage", f"sqlite:///{workdir / f'optuna-{executor}-{attempt}.db'}", "--no-report"]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    out = subprocess.run(command, cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{executor}: exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store}")
    runs = mlflow.search_runs(experiment_names=[name], filter_string="tags.study_role = 'trial'")
    tune = runs[runs["tags.stage"] == "tune"]
    stage_s = (tune["end_time"].max() - tune["start_time"].min()).total_seconds()
    epochs = int(tune["metrics.epochs_run"].sum())
    return {"executor": executor, "attempt": attempt, "wall_s": round(wall, 1), "tune_trials": len(tune),
            "tune_trial_epochs": epochs, "tune_stage_s": round(stage_s, 1),
            "trial_epochs_per_s": round(epochs / stage_s, 2), "main_trials": int((runs["tags.stage"] == "main").sum()),
            "load_1min_at_start": round(load, 2), "load_1min_at_end": round(os.getloadavg()[0], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--spec", type=Path, default=ROOT / "ablations" / "lesson_fair.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="keras,fused")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tune-each-arm-"))
    spec = derived_spec(args.spec, args.epochs, args.train_subset, workdir)
    name = yaml.safe_load(spec.read_text())["name"]
    results = []
    for attempt in range(args.repeat):
        for executor in args.executors.split(","):
            print(f"{executor} (attempt {attempt + 1}): the tuning stage with {args.workers} workers", flush=True)
            results.append(run(spec, name, executor, args.workers, args.data_dir, workdir, attempt))
            print(json.dumps(results[-1]), flush=True)
    rates = {e: [r["trial_epochs_per_s"] for r in results if r["executor"] == e] for e in args.executors.split(",")}
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
              "spec": str(args.spec.relative_to(ROOT)) if args.spec.is_relative_to(ROOT) else args.spec.name,
              "epochs": args.epochs, "train_subset": args.train_subset, "workers": args.workers, "runs": results}
    if {"keras", "fused"} <= set(rates):  # paired by attempt: the two ran back to back, under the same load
        result["fused_over_keras_rate_per_attempt"] = [round(f / k, 2) for f, k in zip(rates["fused"], rates["keras"])]
    stem = f"{dt.date.today():%Y-%m-%d}-{socket.gethostname()}-tune-each-arm"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# The tuning stage of `{result['spec']}` per executor, {result['date']}", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, shared with other work (1-min "
             f"load average in the table); Keras {result['versions'].get('keras')}, JAX "
             f"{result['versions'].get('jax')}. The spec cut to {args.epochs} epochs on {args.train_subset:,} training "
             f"images, one study seed, no fixed-value trials; `python -m study run --workers {args.workers}` on "
             "fresh stores. Tuning stage: first tuning run's start to last one's end (MLflow).", "",
             "| executor | attempt | tuning trials | trial-epochs | tuning stage | trial-epochs / s | whole run | "
             "load at start / end |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['executor']} | {r['attempt'] + 1} | {r['tune_trials']} | {r['tune_trial_epochs']} | "
                     f"{r['tune_stage_s']:.0f} s | {r['trial_epochs_per_s']:.2f} | {r['wall_s']:.0f} s | "
                     f"{r['load_1min_at_start']} / {r['load_1min_at_end']} |")
    if "fused_over_keras_rate_per_attempt" in result:
        lines += ["", "Fused / Keras trial-epochs per second, per attempt (each pair back to back): "
                      + ", ".join(f"{r}x" for r in result["fused_over_keras_rate_per_attempt"]) + ". The first "
                      "attempt of each executor also fills the fresh work folder's compilation caches (JAX/XLA), "
                      "which later attempts reuse."]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
