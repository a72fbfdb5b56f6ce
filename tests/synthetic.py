"""Synthetic factorial studies with planted effects, shaped like the tidy trial frame."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

LEVELS = {"init": ["normal", "xavier", "he"], "optimizer": ["sgd", "adam"], "dropout": ["0.0", "0.2"]}
# Planted main effects (accuracy units) per level; dropout is a null factor.
EFFECTS = {"init": {"normal": 0.0, "xavier": 0.02, "he": 0.05}, "optimizer": {"sgd": 0.0, "adam": 0.03},
           "dropout": {"0.0": 0.0, "0.2": 0.0}}


def synthetic(rng: np.random.Generator, seeds: int = 3, noise: float = 0.01, interaction: float = 0.0,
              levels: dict[str, list[str]] = LEVELS, effects: dict = EFFECTS) -> pd.DataFrame:
    """A complete factorial: y = 0.80 + sum of main effects (+ init=normal x adam) + N(0, noise)."""
    rows = []
    names = list(levels)
    for seed in range(seeds):
        for combo in itertools.product(*(levels[n] for n in names)):
            chosen = dict(zip(names, combo))
            y = 0.80 + sum(effects[n][chosen[n]] for n in names)
            if chosen.get("init") == "normal" and chosen.get("optimizer") == "adam":
                y += interaction
            row = {f"level_{n}": v for n, v in chosen.items()}
            row.update(seed=seed, status="completed", final_val_accuracy=y + rng.normal(0, noise),
                       test_accuracy=y + rng.normal(0, noise), final_val_loss=2 * (1 - y) + rng.normal(0, noise),
                       epochs_run=5.0, run_id=f"r{len(rows)}", trial_key=f"k{len(rows)}")
            rows.append(row)
    return pd.DataFrame(rows)


MAJORITY = 0.1064  # the share of ones in MNIST's holdout: where most of the lesson grid's failed trials sit


def fail_where(frame: pd.DataFrame, **levels: str) -> pd.DataFrame:
    """Plant failures: every trial with these levels predicts one class (val and test accuracy at the
    majority-class rate, val loss ln 10), as the trials that never learned in the lesson grid."""
    out = frame.copy()
    mask = np.ones(len(out), dtype=bool)
    for factor, level in levels.items():
        mask &= (out[f"level_{factor}"] == level).to_numpy()
    out.loc[mask, ["final_val_accuracy", "test_accuracy"]] = MAJORITY
    out.loc[mask, "final_val_loss"] = float(np.log(10))
    return out


def make_noop(frame: pd.DataFrame, factor: str, level: str, reference: str) -> pd.DataFrame:
    """Plant a no-op level: its trials get the reference's results bit for bit (same block, same seed),
    as ReduceLROnPlateau that never fires gives exactly the constant schedule's model."""
    out = frame.copy()
    others = [c for c in out if c.startswith("level_") and c != f"level_{factor}"] + ["seed"]
    ref = out[out[f"level_{factor}"] == reference].set_index(others)
    metrics = ["final_val_accuracy", "test_accuracy", "final_val_loss"]
    target = out[f"level_{factor}"] == level
    keys = pd.MultiIndex.from_frame(out.loc[target, others])
    out.loc[target, metrics] = ref.loc[keys, metrics].to_numpy()
    return out


def heterogeneous(rng: np.random.Generator, mu: float = 0.02, tau: float = 0.03, noise: float = 0.002,
                  seeds: int = 3) -> tuple[pd.DataFrame, float]:
    """A factorial whose `opt` effect differs between blocks: effect = mu + u_block, u ~ N(0, tau) drawn
    afresh per study (blocks are the 4 x 3 combinations of `a` and `b`), seed noise N(0, noise) per trial.
    Returns the frame and the mean effect over these particular blocks (what the seed-noise interval is of)."""
    levels = {"opt": ["sgd", "adam"], "a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1", "b2"]}
    block_effect = {block: mu + rng.normal(0, tau) for block in itertools.product(levels["a"], levels["b"])}
    block_level = {block: rng.normal(0, 0.05) for block in block_effect}
    rows = []
    for seed in range(seeds):
        for opt, a, b in itertools.product(*levels.values()):
            y = 0.8 + block_level[(a, b)] + (block_effect[(a, b)] if opt == "adam" else 0.0) + rng.normal(0, noise)
            rows.append({"level_opt": opt, "level_a": a, "level_b": b, "seed": seed, "status": "completed",
                         "final_val_accuracy": y, "run_id": f"r{len(rows)}", "trial_key": f"k{len(rows)}"})
    return pd.DataFrame(rows), float(np.mean(list(block_effect.values())))
