"""Are two executors' results the same up to seed noise? Per config and per effect.

Two executors cannot be bit-identical (batched arithmetic rounds differently, initial
weights are drawn differently), so equivalence is statistical, over seeds:
- per config, |mean_a - mean_b| <= 2 standard errors of that difference over seeds, the
  per-config variance floored at the grid's median within-config variance (three seeds
  that happen to agree to 0.01 pp must not demand exact equality); the criterion holds
  when at least 95% of configs pass;
- per effect (each level vs its reference), the same sign and overlapping intervals; an effect
  whose interval includes 0 in both runs has no sign to agree on and counts as agreeing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

Z = 2.0  # standard errors
SHARE = 0.95  # configs that must agree


def per_config(a: pd.DataFrame, b: pd.DataFrame, by: list[str], metric: str = "final_val_accuracy") -> pd.DataFrame:
    """One row per config: n, mean and variance over seeds in each run, difference, SE, pass."""
    stats = []
    for frame in (a, b):
        grouped = frame.groupby(by, dropna=False)[metric]
        stats.append(pd.DataFrame({"n": grouped.count(), "mean": grouped.mean(), "var": grouped.var(ddof=1)}))
    joined = stats[0].join(stats[1], lsuffix="_a", rsuffix="_b", how="inner")
    floor = float(np.nanmedian(np.concatenate([joined["var_a"].to_numpy(), joined["var_b"].to_numpy()])))
    var_a, var_b = joined["var_a"].fillna(floor).clip(lower=floor), joined["var_b"].fillna(floor).clip(lower=floor)
    joined["diff"] = joined["mean_b"] - joined["mean_a"]
    joined["se"] = np.sqrt(var_a / joined["n_a"] + var_b / joined["n_b"])
    joined["within"] = joined["diff"].abs() <= Z * joined["se"]
    joined.attrs["variance_floor"] = floor
    return joined.reset_index()


def effects_agree(effects_a: pd.DataFrame, effects_b: pd.DataFrame) -> pd.DataFrame:
    """Per effect row (factor, level): both differences, same sign (or both zero), intervals overlap."""
    keys = ["factor", "level"]
    joined = effects_a[keys + ["diff", "ci_low", "ci_high"]].merge(
        effects_b[keys + ["diff", "ci_low", "ci_high"]], on=keys, suffixes=("_a", "_b"))
    null_a = (joined["ci_low_a"] <= 0) & (joined["ci_high_a"] >= 0)
    null_b = (joined["ci_low_b"] <= 0) & (joined["ci_high_b"] >= 0)
    joined["same_sign"] = (np.sign(joined["diff_a"]) == np.sign(joined["diff_b"])) | (null_a & null_b)
    joined["overlap"] = (joined["ci_low_a"] <= joined["ci_high_b"]) & (joined["ci_low_b"] <= joined["ci_high_a"])
    return joined


def verdict(configs: pd.DataFrame, effects: pd.DataFrame | None = None) -> dict:
    """The summary a report or test states: share of configs within 2 SE, effects agreeing, holds or not."""
    share = float(configs["within"].mean()) if len(configs) else math.nan
    out = {"configs": int(len(configs)), "within_2se": int(configs["within"].sum()), "share_within": share,
           "mean_abs_diff": float(configs["diff"].abs().mean()), "max_abs_diff": float(configs["diff"].abs().max()),
           "variance_floor": configs.attrs.get("variance_floor", math.nan), "holds": bool(share >= SHARE)}
    if effects is not None and len(effects):
        out.update(effects=int(len(effects)), same_sign=int(effects["same_sign"].sum()),
                   overlapping=int(effects["overlap"].sum()))
        out["holds"] = out["holds"] and bool(effects["same_sign"].all() and effects["overlap"].all())
    return out
