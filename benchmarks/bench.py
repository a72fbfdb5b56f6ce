"""Throughput benchmark: the lesson's naive code vs our runner, same configs, same machine, same run.

Measures seconds per trial-epoch (wall time, process start-up and data loading
included, as a user pays them) and trials per hour for:
  1. naive: the lesson's Keras/TF code, model.fit defaults, a fresh process per trial;
  2. ours, TensorFlow backend;   3. ours, JAX backend;   4. ours with N workers;
on a seeded sample of lesson-grid configs that covers every factor level. It also
checks agreement (mean |difference| of final val accuracy vs the naive baseline,
per backend), measures a worker's memory after 10 and 100 trials, projects the
full 2,160 trial-epoch grid, and writes benchmarks/results/<date>-<host>.{json,md}.

Usage: python benchmarks/bench.py [--sample 12] [--epochs 5] [--workers 2] [--data-dir DIR]
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

from study.spec import parse_spec  # noqa: E402
from study.tracking import machine, versions  # noqa: E402
from study.runner import unique_trials  # noqa: E402

GRID_TRIAL_EPOCHS = 432 * 5


def sample_spec(args, workdir: Path) -> Path:
    raw = yaml.safe_load((ROOT / "ablations" / "lesson_grid.yaml").read_text())
    raw.update(name="bench_sample", design="random_subset", sample_size=args.sample, sample_seed=args.sample_seed,
               seeds=[0], epochs=args.epochs)
    if args.train_subset:
        raw["train_subset"] = args.train_subset
    path = workdir / "bench_sample.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_naive(trials, data_dir: str) -> dict:
    """One fresh process per trial, as the lesson's code is usually run."""
    results, started = {}, time.perf_counter()
    for trial in trials:
        config = trial.config.replace(backend="tensorflow").as_dict()
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lesson_naive.py"), json.dumps(config),
                              data_dir], capture_output=True, text=True, env={**env(), "KERAS_BACKEND": "tensorflow"},
                             check=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
        results[_config_id(trial.config)] = json.loads(line)["final_val_accuracy"]
        print(f"  naive {len(results)}/{len(trials)}: val_acc {results[_config_id(trial.config)]}", flush=True)
    return {"wall_s": time.perf_counter() - started, "val_acc": results}


def run_ours(spec: Path, backend: str, data_dir: str, workdir: Path, workers: int = 1) -> dict:
    """`python -m study run` exactly as a user runs it (one process, or N workers)."""
    store = workdir / f"ours-{backend}-{workers}.db"
    queue = workdir / f"queue-{backend}-{workers}.db"  # each setting on fresh stores, or it finds the study done
    cmd = [sys.executable, "-m", "study", "run", str(spec), "--backend", backend, "--data-dir", data_dir,
           "--tracking-uri", f"sqlite:///{store}", "--storage", f"sqlite:///{queue}", "--no-report"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, env=env(), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store}")
    runs = mlflow.search_runs(experiment_names=["bench_sample"], filter_string="tags.study_role = 'trial'",
                              output_format="list")
    from study.config import from_params

    val_acc = {_config_id(from_params(r.data.params)): r.data.metrics.get("final_val_accuracy")
               for r in runs if r.info.status == "FINISHED"}
    trial_s = [r.data.metrics.get("wall_time_s", 0.0) for r in runs if r.info.status == "FINISHED"]
    return {"wall_s": wall, "val_acc": val_acc, "sum_trial_s": sum(trial_s)}


def run_memory_probe(data_dir: str, trials: int) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_probe.py"), data_dir, str(trials)],
                         capture_output=True, text=True, env=env(), check=True)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def _config_id(config) -> str:
    return config.replace(backend="tensorflow").key()


def supports_workers() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "study", "run", "--help"], capture_output=True, text=True,
                               env=env()).stdout
    return "--workers" in help_text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=12, help="grid configs in the sample (>= 12 covers all levels)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-subset", type=int, default=None, help="fewer training images (quick check only)")
    parser.add_argument("--workers", type=int, default=2, help="workers for measurement 4 (0 to skip)")
    parser.add_argument("--memory-trials", type=int, default=100, help="trials for the RSS probe (0 to skip)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.data_dir:
        from study.data import load_mnist, write_cache

        cache = Path(tempfile.mkdtemp())
        write_cache(load_mnist(), cache)
        args.data_dir = str(cache)

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    spec_path = sample_spec(args, workdir)
    trials = unique_trials(parse_spec(yaml.safe_load(spec_path.read_text()), str(spec_path)))
    n, epochs = len(trials), args.epochs
    print(f"sample: {n} configs x {epochs} epochs, full MNIST{' subset ' + str(args.train_subset) if args.train_subset else ''}",
          flush=True)

    measurements: dict[str, dict] = {}
    if not args.skip_naive:
        print("1. naive lesson code (TF, fit defaults, fresh process per trial)", flush=True)
        measurements["naive_tf"] = run_naive(trials, args.data_dir)
    for backend in ("tensorflow", "jax"):
        print(f"{len(measurements) + 1}. our runner, {backend}", flush=True)
        measurements[f"ours_{backend}"] = run_ours(spec_path, backend, args.data_dir, workdir)
    fastest = min(("tensorflow", "jax"), key=lambda b: measurements[f"ours_{b}"]["wall_s"])
    if args.workers > 1 and supports_workers():
        print(f"{len(measurements) + 1}. our runner, {fastest}, {args.workers} workers", flush=True)
        measurements[f"ours_{fastest}_{args.workers}workers"] = run_ours(
            spec_path, fastest, args.data_dir, workdir, workers=args.workers)
    memory = run_memory_probe(args.data_dir, args.memory_trials) if args.memory_trials else None

    naive = measurements.get("naive_tf")
    rows = []
    for name, m in measurements.items():
        per_epoch = m["wall_s"] / (n * epochs)
        row = {"setting": name, "wall_s": round(m["wall_s"], 1), "s_per_trial_epoch": round(per_epoch, 3),
               "trials_per_hour": round(n / m["wall_s"] * 3600, 1),
               "projected_grid_min": round(GRID_TRIAL_EPOCHS * per_epoch / 60, 1),
               "completed": len(m["val_acc"])}
        if len(m["val_acc"]) < n:
            row["setting"] += " (INVALID: not every trial completed)"
        if naive:
            row["speedup_vs_naive"] = round(naive["wall_s"] / m["wall_s"], 2)
            if name != "naive_tf":
                diffs = [abs(m["val_acc"][k] - v) for k, v in naive["val_acc"].items()
                         if k in m["val_acc"] and v is not None and m["val_acc"][k] is not None]
                row["mean_abs_val_acc_diff_pp"] = round(100 * sum(diffs) / max(1, len(diffs)), 3)
                row["identical_val_acc"] = f"{sum(d == 0 for d in diffs)}/{len(diffs)}"
        rows.append(row)

    stamp = dt.datetime.now()
    result = {"date": stamp.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
              "sample": {"configs": n, "epochs": epochs, "train_subset": args.train_subset,
                         "sample_seed": args.sample_seed, "levels": [t.levels for t in trials]},
              "grid_trial_epochs": GRID_TRIAL_EPOCHS, "rows": rows, "memory": memory,
              "command": " ".join(sys.argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{stamp:%Y-%m-%d}-{socket.gethostname()}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    markdown = render_markdown(result)
    (args.out / f"{stem}.md").write_text(markdown)
    print(markdown)
    return 0


def render_markdown(result: dict) -> str:
    import pandas as pd

    m = result["machine"]
    lines = [f"# Benchmark {result['date']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}. "
             f"Keras {result['versions'].get('keras')}, TensorFlow "
             f"{result['versions'].get('tensorflow-cpu', result['versions'].get('tensorflow'))}, "
             f"JAX {result['versions'].get('jax')}.", "",
             f"Sample: {result['sample']['configs']} lesson-grid configs covering every factor level, "
             f"{result['sample']['epochs']} epochs, seed 0, "
             + (f"first {result['sample']['train_subset']} training images" if result['sample']['train_subset']
                else "full MNIST (50k train, 10k validation)")
             + ". Wall time includes process start-up and data loading. Projected grid = "
             f"{result['grid_trial_epochs']} trial-epochs x s/trial-epoch.", "",
             pd.DataFrame(result["rows"]).to_markdown(index=False), ""]
    if result.get("memory"):
        mem = result["memory"]
        lines += [f"Memory: worker RSS {mem['rss_mb_after_10']:.0f} MB after 10 trials, "
                  f"{mem['rss_mb_after_last']:.0f} MB after {mem['trials']} "
                  f"({100 * (mem['rss_mb_after_last'] / mem['rss_mb_after_10'] - 1):+.1f}%).", ""]
    lines += [f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
