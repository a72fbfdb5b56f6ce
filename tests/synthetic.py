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
