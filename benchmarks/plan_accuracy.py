"""`study plan`'s predicted wall time against `study run`'s measured one, on three specs of different size.

    python benchmarks/plan_accuracy.py [--data-dir DIR] [--workers 2] [--workdir DIR]

Each spec is planned (calibrating this machine first if its cache lacks the structure), then run from scratch with
the same worker count on fresh stores; the measured time is the whole `study run` process (start-up included, as
the prediction's). Writes benchmarks/results/<date>-<host>-plan.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.tracking.environment import machine  # noqa: E402

BASE = """
name: {name}
epochs: {epochs}
batch_size: 32
validation: holdout
train_subset: {subset}
seeds: {seeds}
base: {{units: 32, hidden_layers: 2}}
factors:
{factors}
"""
SPECS = {  # name: (epochs, training examples, seeds, factors): 8, 24 and 48 trials
    "plan_small": (1, 1000, [0, 1], {"activation": ["sigmoid", "relu"], "optimizer": ["sgd", "adam"]}),
    "plan_medium": (2, 2000, [0, 1, 2], {"activation": ["sigmoid", "relu"], "optimizer": ["sgd", "adam"],
                                         "init": ["xavier", "he"]}),
    "plan_large": (2, 4000, [0, 1, 2], {"activation": ["sigmoid", "relu"], "optimizer": ["sgd", "adam"],
                                        "init": ["normal", "xavier", "he"], "dropout": [0.0, 0.2]}),
}


def seconds(text: str) -> float:
    """`1m02s` / `58s` / `1h02m` (study.core.text.format_duration) -> seconds."""
    parts = dict((unit, float(v)) for v, unit in re.findall(r"([\d.]+)([hms])", text))
    return parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/plan-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for name, (epochs, subset, seeds, factors) in SPECS.items():
        text = BASE.format(name=name, epochs=epochs, subset=subset, seeds=seeds,
                           factors="\n".join(f"  {k}: {json.dumps(v)}" for k, v in factors.items()))
        spec = args.workdir / f"{name}.yaml"
        spec.write_text(text)
        common = ["--data-dir", args.data_dir]
        plan = subprocess.run([sys.executable, "-m", "study", "plan", str(spec), "--workers", str(args.workers),
                               "--tracking-uri", f"sqlite:///{args.workdir / name}-none.db", *common],
                              cwd=args.workdir, env=env, capture_output=True, text=True, check=True).stdout
        line = next(line for line in plan.splitlines() if "keras executor" in line and "worker(s):" in line)
        predicted = seconds(line.split("worker(s):")[1].split("(")[0])
        load_before = os.getloadavg()[0]
        tick = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "study", "run", str(spec), "--workers", str(args.workers),
                              "--no-report", "--tracking-uri", f"sqlite:///{args.workdir / name}.db", *common],
                             cwd=args.workdir, env=env, capture_output=True, text=True, check=True)
        measured = time.perf_counter() - tick
        rows.append({"spec": name, "trials": len(seeds) * math.prod(len(v) for v in factors.values()),
                     "epochs": epochs, "train_subset": subset, "predicted_s": round(predicted, 1),
                     "measured_s": round(measured, 1), "predicted_over_measured": round(predicted / measured, 3),
                     "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
                     "run_first_line": run.stdout.splitlines()[0], "plan_line": line.strip()})
        print(rows[-1], flush=True)
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "workers": args.workers, "executor": "keras", "backend": "tensorflow", "rows": rows}
    stem = args.out / f"{dt.date.today().isoformat()}-{socket.gethostname()}-plan"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# study plan: predicted vs measured wall time ({report['date'][:10]}, {report['machine']['host']})", "",
             f"{report['machine']['cpu']}, {report['machine']['cores']} cores (shared: the load is beside each row); "
             f"keras executor, TensorFlow, {args.workers} workers; measured: the whole `study run` process. "
             "Predicted: the launch cost of one real run (its start, the stores, the workers' start) plus each "
             "trial's calibrated cost over the workers (study.execution.plan).", "",
             "| spec | trials | epochs | training images | predicted | measured | predicted / measured | load |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['spec']} | {r['trials']} | {r['epochs']} | {r['train_subset']} | {r['predicted_s']} s | "
              f"{r['measured_s']} s | {r['predicted_over_measured']} | {r['load_before']}-{r['load_after']} |"
              for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
