"""The lesson grid end to end with each executor, in one benchmark run, and their equivalence.

    python benchmarks/grid_executors.py [--data-dir DIR] [--workers 2] [--executors keras,fused]
                                        [--spec ablations/lesson_grid.yaml] [--epochs N] [--train-subset N]

For each executor: `python -m study run SPEC --executor X --workers W` on fresh stores, report
included, exactly as a user runs it; wall time, seconds per trial-epoch, and the arithmetic
floor (the grid's training and evaluation FLOPs over this machine's measured matmul rate).
Then the equivalence of their results (study.analysis.equivalence: per config within 2 SE
over seeds, effects with the same sign and overlapping intervals). Writes
benchmarks/results/<date>-<host>-grid-executors.{json,md} and the per-config table as CSV.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.spec.study_spec import load_spec  # noqa: E402
from study.tracking.environment import machine, versions  # noqa: E402


def run(spec: Path, executor: str, workers: int, data_dir: str, workdir: Path, overrides: list[str]) -> dict:
    store, queue = workdir / f"mlflow-{executor}.db", workdir / f"optuna-{executor}.db"
    command = [sys.executable, "-m", "study", "run", str(spec), "--executor", executor, "--workers", str(workers),
               "--data-dir", data_dir, "--tracking-uri", f"sqlite:///{store}", "--storage", f"sqlite:///{queue}",
               "--reports-dir", str(workdir / f"reports-{executor}"), *overrides]
    started = time.perf_counter()
    out = subprocess.run(command, cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{executor}: exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return {"wall_s": wall, "store": f"sqlite:///{store}", "log_tail": out.stdout[-600:]}


def matmul_gflops() -> float:
    """This machine's float32 matmul rate through XLA (both cores), the floor's denominator."""
    code = ("import time, jax, jax.numpy as jnp\n"
            "a = jnp.ones((2048, 2048), jnp.float32); f = jax.jit(lambda x: x @ x); f(a).block_until_ready()\n"
            "t = time.perf_counter(); [f(a).block_until_ready() for _ in range(20)]\n"
            "print(2 * 2048 ** 3 * 20 / (time.perf_counter() - t) / 1e9)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def floor_per_trial_epoch(spec, gflops: float) -> float:
    """FLOPs of one trial-epoch (3x forward for training, 1x for validation) of the grid's mean structure."""
    base = spec.base
    sizes = [784] + [base.units] * base.hidden_layers + [10]
    forward = 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))
    train, val = (50_000, 10_000) if base.validation == "holdout" else (60_000, 10_000)
    train = min(train, base.train_subset or train)
    return (3 * forward * train + forward * val) / (gflops * 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--spec", type=Path, default=ROOT / "ablations" / "lesson_grid.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="keras,fused")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--no-confirm", action="store_true",
                        help="train the grid without its confirm stage (the executors' timing is about the grid)")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    workdir = Path(tempfile.mkdtemp(prefix="grid-executors-"))
    if args.no_confirm and "confirm" in spec.raw:
        import yaml

        raw = {k: v for k, v in spec.raw.items() if k != "confirm"}
        args.spec = workdir / args.spec.name
        args.spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        spec = load_spec(args.spec)
    import mlflow

    from study.analysis.equivalence import effects_agree, per_config, verdict
    from study.analysis.levels import tidy_trials
    from study.analysis.runs import trials_frame
    from study.analysis.stats.divergence import impute_diverged
    from study.analysis.stats.blocks import block_effects

    gflops = matmul_gflops()
    results, frames = {}, {}
    for executor in args.executors.split(","):
        print(f"{executor}: training the grid with {args.workers} workers", flush=True)
        results[executor] = run(args.spec, executor, args.workers, args.data_dir, workdir, [])
        mlflow.set_tracking_uri(results[executor]["store"])
        frame = impute_diverged(tidy_trials(trials_frame(spec.name), spec))
        frames[executor] = frame
        trial_epochs = int(frame["epochs_run"].sum())
        results[executor].update(trials=len(frame), trial_epochs=trial_epochs,
                                 s_per_trial_epoch=results[executor]["wall_s"] / trial_epochs)
        print(f"{executor}: {results[executor]['wall_s']:.0f} s, {len(frame)} trials", flush=True)
    floor = floor_per_trial_epoch(spec, gflops)
    levels = [f"level_{f}" for f in spec.factors]
    equivalence = None
    if {"keras", "fused"} <= set(frames):
        configs = per_config(frames["keras"], frames["fused"], levels)
        factor_levels = {f: [lv.label for lv in spec.factors[f]] for f in spec.factors}
        effects = effects_agree(block_effects(frames["keras"], factor_levels, "final_val_accuracy"),
                                block_effects(frames["fused"], factor_levels, "final_val_accuracy"))
        equivalence = verdict(configs, effects)
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = f"{dt.date.today():%Y-%m-%d}-{socket.gethostname()}"
        configs.to_csv(args.out / f"{stamp}-equivalence-configs.csv", index=False)
        effects.to_csv(args.out / f"{stamp}-equivalence-effects.csv", index=False)
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
              "spec": str(args.spec.resolve().relative_to(ROOT)) if args.spec.resolve().is_relative_to(ROOT) else args.spec.name, "workers": args.workers, "matmul_gflops": round(gflops, 1),
              "floor_s_per_trial_epoch": round(floor, 4),
              "runs": {k: {n: (round(v, 4) if isinstance(v, float) else v) for n, v in r.items() if n != "store"}
                       for k, r in results.items()},
              "equivalence": equivalence}
    if "keras" in results and "fused" in results:
        result["fused_over_keras_time"] = round(results["fused"]["wall_s"] / results["keras"]["wall_s"], 3)
    stem = f"{dt.date.today():%Y-%m-%d}-{socket.gethostname()}-grid-executors"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# The lesson grid per executor, {result['date']}", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; Keras "
             f"{result['versions'].get('keras')}, JAX {result['versions'].get('jax')}. Spec `{result['spec']}`, "
             f"{args.workers} workers, end to end (`python -m study run`, report included), fresh stores.", "",
             "| executor | trials | wall | s / trial-epoch | x floor |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['trials']} | {r['wall_s'] / 60:.1f} min | {r['s_per_trial_epoch']:.3f} | "
                     f"{r['s_per_trial_epoch'] / floor:.1f} |")
    lines += ["", f"Arithmetic floor: {floor:.3f} s per trial-epoch (training 3x and validation 1x the forward "
                  f"FLOPs of the grid's {spec.base.hidden_layers}x{spec.base.units} MLP over {gflops:.0f} GFLOP/s, "
                  "this machine's float32 matmul rate through XLA on all cores)."]
    if "fused_over_keras_time" in result:
        lines.append(f"Fused / Keras wall time: {result['fused_over_keras_time']:.2f}.")
    if equivalence:
        lines += ["", f"Equivalence (study.analysis.equivalence): {equivalence['within_2se']} of "
                      f"{equivalence['configs']} configs ({100 * equivalence['share_within']:.1f}%) have fused and "
                      f"Keras mean final val accuracies within 2 SE over seeds (criterion: at least 95%); mean "
                      f"|difference| {100 * equivalence['mean_abs_diff']:.2f} pp, max "
                      f"{100 * equivalence['max_abs_diff']:.2f} pp; effects with the same sign "
                      f"{equivalence.get('same_sign')}/{equivalence.get('effects')}, overlapping intervals "
                      f"{equivalence.get('overlapping')}/{equivalence.get('effects')}. Holds: "
                      f"{'yes' if equivalence['holds'] else 'NO'}."]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
