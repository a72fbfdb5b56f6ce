"""Throughput benchmark: the lesson's naive code vs our runner, same configs, same machine, same run.

Measures seconds per trial-epoch (wall time, process start-up and data loading
included, as a user pays them) and trials per hour for:
  1. naive: the lesson's Keras code, model.fit defaults, a fresh process per trial,
     on TensorFlow (the baseline) and on JAX (the same-backend reference for ours on JAX);
  2. ours, TensorFlow backend;   3. ours, JAX backend;   4. ours with N workers;
on a seeded sample of lesson-grid configs that covers every factor level. It also
checks agreement (mean |difference| of final val accuracy vs the naive code on the
same backend, seed 0), measures a worker's memory after 10 and 100 trials, projects
the full 2,160 trial-epoch grid, and writes benchmarks/results/<date>-<host>.{json,md}.

Seeds: the naive rows and ours on TensorFlow train each sample config once (seed 0).
Ours on JAX trains it with `--seeds` seeds (default 2; the grid has 3), because
what a JAX trial costs depends on whether its compiled program is new to the worker
(first trial of a model structure) or reused (every later one): the grid's mix is
3 seeds per config, and more configs than structures. The table gives both costs.

Usage: python benchmarks/bench.py [--sample 12] [--epochs 5] [--seeds 2] [--workers 2] [--data-dir DIR]
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

from study.spec.study_spec import parse_spec  # noqa: E402
from study.tracking.environment import machine, versions  # noqa: E402

GRID_TRIAL_EPOCHS = 432 * 5


def sample_spec(args, workdir: Path, seeds: int) -> Path:
    raw = yaml.safe_load((ROOT / "ablations" / "lesson_grid.yaml").read_text())
    raw.update(name="bench_sample", design="random_subset", sample_size=args.sample, sample_seed=args.sample_seed,
               seeds=list(range(seeds)), epochs=args.epochs)
    if args.train_subset:
        raw["train_subset"] = args.train_subset
    path = workdir / f"bench_sample_{seeds}seeds.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_naive(trials, data_dir: str, backend: str) -> dict:
    """One fresh process per trial, as the lesson's code is usually run."""
    results, started = {}, time.perf_counter()
    for trial in trials:
        config = trial.config.replace(backend=backend).as_dict()
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lesson_naive.py"), json.dumps(config),
                              data_dir], capture_output=True, text=True, env={**env(), "KERAS_BACKEND": backend},
                             check=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
        results[_config_id(trial.config)] = json.loads(line)["final_val_accuracy"]
        print(f"  naive {backend} {len(results)}/{len(trials)}: val_acc {results[_config_id(trial.config)]}",
              flush=True)
    return {"wall_s": time.perf_counter() - started, "val_acc": results, "trials": len(trials)}


def run_ours(spec: Path, backend: str, data_dir: str, workdir: Path, expected: int, workers: int = 1,
             executor: str = "keras") -> dict:
    """`python -m study run` exactly as a user runs it (one process, or N workers)."""
    store = workdir / f"ours-{backend}-{executor}-{workers}.db"
    queue = workdir / f"queue-{backend}-{executor}-{workers}.db"  # fresh stores per setting, or the study is done
    cmd = [sys.executable, "-m", "study", "run", str(spec), "--backend", backend, "--executor", executor,
           "--data-dir", data_dir, "--tracking-uri", f"sqlite:///{store}", "--storage", f"sqlite:///{queue}",
           "--no-report"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, env=env(), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{store}")
    runs = mlflow.search_runs(experiment_names=["bench_sample"], filter_string="tags.study_role = 'trial'",
                              output_format="list")
    from study.config import from_params, structure_key

    finished = sorted((r for r in runs if r.info.status == "FINISHED"), key=lambda r: r.info.start_time)
    configs = [from_params(r.data.params) for r in finished]
    val_acc = {_config_id(c): r.data.metrics.get("final_val_accuracy")
               for c, r in zip(configs, finished) if c.seed == 0}
    # What a trial cost (its MLflow run, logging included): the first of its model structure in its
    # worker (a new program: traced and compiled, or loaded from JAX's persistent cache) vs the rest.
    seen: set = set()
    first, reused = [], []
    for config, run in zip(configs, finished):
        key = (run.data.tags.get("worker"), structure_key(config))
        (reused if key in seen else first).append((run.info.end_time - run.info.start_time) / 1000)
        seen.add(key)
    mean = lambda xs: round(sum(xs) / len(xs), 2) if xs else None  # noqa: E731
    return {"wall_s": wall, "val_acc": val_acc, "trials": len(finished), "expected": expected, "workers": workers,
            "sum_trial_s": sum(first) + sum(reused),
            "first_of_structure": {"trials": len(first), "mean_s": mean(first)},
            "reused_structure": {"trials": len(reused), "mean_s": mean(reused)}}


def grid_structures() -> tuple[int, int]:
    """(trials, distinct compiled structures) of the lesson grid."""
    from study.config import structure_key

    grid = parse_spec(yaml.safe_load((ROOT / "ablations" / "lesson_grid.yaml").read_text()),
                                    "ablations/lesson_grid.yaml").unique_trials()
    return len(grid), len({structure_key(t.config) for t in grid})


def structure_projection(m: dict) -> float:
    """The grid's wall time from this row's measured costs, for the grid's own mix of trials.

    A JAX trial costs more when its model structure is new to its worker (the program
    is traced and compiled) than when it is reused. The sample has about one structure
    per config; the grid has 16 structures over 432 trials, so a linear projection of
    the sample overstates the grid. Each of W workers meets every structure once:
    W x S new-structure trials, the rest reused, run W at a time, plus this row's
    fixed cost (process start-up, data loading, stores) as measured. It prices the
    grid's epochs as the sample's (5 by default, as in the grid).
    """
    n_grid, structures = grid_structures()
    workers = m["workers"]
    new = min(n_grid, workers * structures)
    training = new * m["first_of_structure"]["mean_s"] + (n_grid - new) * m["reused_structure"]["mean_s"]
    fixed = max(0.0, m["wall_s"] - m["sum_trial_s"] / workers)
    return fixed + training / workers


def run_memory_probe(data_dir: str, trials: int) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_probe.py"), data_dir, str(trials)],
                         capture_output=True, text=True, env=env(), check=True)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def _config_id(config) -> str:
    return config.replace(backend="tensorflow").key()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=12, help="grid configs in the sample (>= 12 covers all levels)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-subset", type=int, default=None, help="fewer training images (quick check only)")
    parser.add_argument("--seeds", type=int, default=2,
                        help="seeds per config for ours on JAX (the grid has 3; 2 keeps the run under 20 minutes)")
    parser.add_argument("--workers", type=int, default=2, help="workers for measurement 4 (0 to skip)")
    parser.add_argument("--memory-trials", type=int, default=100, help="trials for the RSS probe (0 to skip)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.data_dir:
        from study.data.mnist import load_mnist, write_cache

        cache = Path(tempfile.mkdtemp())
        write_cache(load_mnist(), cache)
        args.data_dir = str(cache)

    bench_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    spec_once = sample_spec(args, workdir, 1)
    spec_seeds = sample_spec(args, workdir, args.seeds)
    trials = parse_spec(yaml.safe_load(spec_once.read_text()), str(spec_once)).unique_trials()
    n, epochs = len(trials), args.epochs
    print(f"sample: {n} configs x {epochs} epochs, full MNIST{' subset ' + str(args.train_subset) if args.train_subset else ''}",
          flush=True)

    measurements: dict[str, dict] = {}
    if not args.skip_naive:
        for backend in ("tensorflow", "jax"):
            print(f"naive lesson code ({backend}, fit defaults, fresh process per trial)", flush=True)
            measurements[f"naive_{backend}"] = run_naive(trials, args.data_dir, backend)
    print("our runner, tensorflow", flush=True)
    measurements["ours_tensorflow"] = run_ours(spec_once, "tensorflow", args.data_dir, workdir, n)
    print(f"our runner, jax, {args.seeds} seed(s)", flush=True)
    measurements["ours_jax"] = run_ours(spec_seeds, "jax", args.data_dir, workdir, n * args.seeds)
    if args.workers > 1:
        print(f"our runner, jax, {args.seeds} seed(s), {args.workers} workers", flush=True)
        measurements[f"ours_jax_{args.workers}workers"] = run_ours(
            spec_seeds, "jax", args.data_dir, workdir, n * args.seeds, workers=args.workers)
    for workers in sorted({1, max(1, args.workers)}):
        print(f"our runner, jax, fused executor, {args.seeds} seed(s), {workers} worker(s)", flush=True)
        measurements[f"ours_jax_fused_{workers}worker{'s' if workers > 1 else ''}"] = run_ours(
            spec_seeds, "jax", args.data_dir, workdir, n * args.seeds, workers=workers, executor="fused")
    memory = run_memory_probe(args.data_dir, args.memory_trials) if args.memory_trials else None

    baseline = measurements.get("naive_tensorflow")
    rows = []
    for name, m in measurements.items():
        trained = m["trials"]
        per_epoch = m["wall_s"] / (trained * epochs)
        row = {"setting": name, "trials": trained, "wall_s": round(m["wall_s"], 1),
               "s_per_trial_epoch": round(per_epoch, 3), "trials_per_hour": round(trained / m["wall_s"] * 3600, 1),
               "projected_grid_min": round(GRID_TRIAL_EPOCHS * per_epoch / 60, 1)}
        if trained < m.get("expected", trained):
            row["setting"] += " (INVALID: not every trial completed)"
        if baseline:
            row["speedup_vs_naive_tf"] = round(baseline["wall_s"] / baseline["trials"] / per_epoch / epochs, 2)
        backend = "jax" if "jax" in name else "tensorflow"
        same = measurements.get(f"naive_{backend}")
        if same and not name.startswith("naive") and "fused" not in name:  # fused is equivalent, not identical
            diffs = [abs(m["val_acc"][k] - v) for k, v in same["val_acc"].items()
                     if k in m["val_acc"] and v is not None and m["val_acc"][k] is not None]
            row["vs_naive_same_backend_pp"] = round(100 * sum(diffs) / max(1, len(diffs)), 3)
            row["identical_val_acc"] = f"{sum(d == 0 for d in diffs)}/{len(diffs)}"
        if "first_of_structure" in m:
            row["s_per_trial_new_structure"] = m["first_of_structure"]["mean_s"]
            row["s_per_trial_reused_structure"] = m["reused_structure"]["mean_s"]
            if backend == "jax" and m["reused_structure"]["mean_s"] is not None:
                row["projected_grid_min_by_structure"] = round(structure_projection(m) / 60, 1)
        rows.append(row)
    cross = {}
    if baseline and "naive_jax" in measurements:
        diffs = [abs(measurements["naive_jax"]["val_acc"][k] - v) for k, v in baseline["val_acc"].items()
                 if v is not None and measurements["naive_jax"]["val_acc"].get(k) is not None]
        cross["naive_jax_vs_naive_tf_pp"] = round(100 * sum(diffs) / max(1, len(diffs)), 3)

    stamp = dt.datetime.now()
    result = {"date": stamp.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
              "sample": {"configs": n, "epochs": epochs, "train_subset": args.train_subset,
                         "sample_seed": args.sample_seed, "levels": [t.levels for t in trials]},
              "seeds_jax": args.seeds, "grid_trial_epochs": GRID_TRIAL_EPOCHS, "rows": rows, "memory": memory,
              "cross_backend": cross, "bench_wall_min": round((time.perf_counter() - bench_started) / 60, 1),
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
             f"{result['sample']['epochs']} epochs, "
             + (f"first {result['sample']['train_subset']} training images" if result['sample']['train_subset']
                else "full MNIST (50k train, 10k validation)")
             + f"; seed 0 for the naive rows and ours on TensorFlow, seeds 0-{result.get('seeds_jax', 1) - 1} "
             "for ours on JAX (the grid trains every config with 3 seeds). Wall time includes process start-up "
             f"and data loading. Projected grid = {result['grid_trial_epochs']} trial-epochs x s/trial-epoch. "
             "Agreement: mean |final val accuracy difference| to the naive code on the same backend, seed 0. "
             "`projected_grid_min_by_structure`: the grid's own mix (16 model structures over 432 trials, each "
             "worker compiling each structure once) priced with the row's measured new- and reused-structure "
             "trial costs plus its measured fixed cost (see `structure_projection`).", "",
             pd.DataFrame(result["rows"]).to_markdown(index=False), ""]
    if result.get("cross_backend"):
        lines += [f"Across backends (different random streams from the same seed): naive JAX vs naive TF "
                  f"{result['cross_backend']['naive_jax_vs_naive_tf_pp']} pp mean |val accuracy difference|.", ""]
    if result.get("memory"):
        mem = result["memory"]
        lines += [f"Memory: worker RSS {mem['rss_mb_after_10']:.0f} MB after 10 trials, "
                  f"{mem['rss_mb_after_last']:.0f} MB after {mem['trials']} "
                  f"({100 * (mem['rss_mb_after_last'] / mem['rss_mb_after_10'] - 1):+.1f}%).", ""]
    if result.get("bench_wall_min") is not None:
        lines += [f"This benchmark ran for {result['bench_wall_min']} minutes.", ""]
    lines += [f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
