"""Log a 2x2x2 factorial with 5 seeds to MLflow the way a user's own script would (it does not import `study`).

Params a, b, c, seed; metrics val_accuracy (a per-step history, the last step the final value) with a planted
effect of +3 pp for a=hi, none for b, +1 pp for c=v, and seed noise, and val_loss = 2 (1 - val_accuracy).
`--messy` breaks the design the ways real experiments are broken: a missing cell, an unbalanced block, a
one-level param `d`, runs without the metric, a run without the param `c`, a duplicated (config, seed) run and
a failed run.

    python tests/scripts/log_factorial.py sqlite:///mlflow.db planted [--messy]
"""

from __future__ import annotations

import argparse
import itertools
import time

import mlflow
import numpy as np
from mlflow.entities import Metric, Param

A, B, C = ("lo", "hi"), ("x", "y"), ("u", "v")
SEEDS = range(5)
STEPS = 4


def accuracy(rng: np.random.Generator, a: str, b: str, c: str) -> float:
    return 0.80 + 0.03 * (a == "hi") + 0.01 * (c == "v") + rng.normal(0, 0.006)


def log_run(name: str, params: dict, final: float | None, status: str = "FINISHED") -> None:
    """One run: its params and, unless it crashed first, the metrics per step (the last step is the final value)."""
    metrics = []
    if final is not None:
        now = int(time.time() * 1000)
        for metric, value, start in (("val_accuracy", final, 0.1), ("val_loss", 2.0 * (1.0 - final), 2.3)):
            metrics += [Metric(metric, start + (step + 1) / (STEPS + 1) * (value - start), now + step, step)
                        for step in range(STEPS + 1)]
    with mlflow.start_run(run_name=name) as run:
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=metrics,
                                        params=[Param(k, str(v)) for k, v in params.items()])
    if status != "FINISHED":
        mlflow.MlflowClient().set_terminated(run.info.run_id, status=status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tracking_uri")
    parser.add_argument("experiment")
    parser.add_argument("--messy", action="store_true")
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    rng = np.random.default_rng(2024)
    for seed, (a, b, c) in itertools.product(SEEDS, itertools.product(A, B, C)):
        final = accuracy(rng, a, b, c)
        params = {"a": a, "b": b, "c": c, "seed": seed, "lr": 0.01}
        if args.messy:
            if (a, b, c) == ("hi", "y", "v"):
                continue  # a missing cell: this config never ran
            if (a, b, c) == ("lo", "x", "u") and seed == 4:
                continue  # an unbalanced block: this config lacks seed 4
            params["d"] = "same"  # a factor with one level
        log_run(f"{a}-{b}-{c}-s{seed}", params, final)
    if args.messy:
        log_run("crashed-1", {"a": "lo", "b": "y", "c": "u", "seed": 0, "d": "same"}, None, status="FAILED")
        log_run("no-metric", {"a": "hi", "b": "x", "c": "u", "seed": 7, "d": "same"}, None)
        log_run("no-c", {"a": "hi", "b": "x", "seed": 1, "d": "same"}, 0.83)
        log_run("again", {"a": "lo", "b": "y", "c": "v", "seed": 2, "d": "same"}, 0.81)  # a duplicate
        log_run("no-seed", {"a": "lo", "b": "y", "c": "v", "d": "same"}, 0.81)


if __name__ == "__main__":
    main()
