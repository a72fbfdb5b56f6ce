"""How small a difference a study can see: the smallest detectable difference at 80% power.

Per effect the block tables carry it (`detectable`: from the scatter of the block differences and
their number). Between two configs it comes from the seed noise of the configs a leaderboard compares
(the best quarter): a config mean over S seeds, two configs compared with a two-sample t test (statsmodels' TTestIndPower, noncentral t).
"""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.stats.intervals import ALPHA, POWER, level_column


def seed_sd(frame: pd.DataFrame, factors: list[str], metric: str, top_share: float = 0.25) -> dict[str, float]:
    """Seed noise: the median over configs of the SD over seeds, and the pooled within-config SD of the
    best `top_share` of configs by mean (at least 2): the configs a leaderboard compares. (Pooled over
    every config, a few configs that learn on one seed and not on another would dominate it.)"""
    columns = [level_column(f) for f in factors]
    data = frame[frame[metric].notna()]
    if not columns:
        data = data.assign(_config=0)
        columns = ["_config"]
    stats_ = data.groupby(columns, observed=True)[metric].agg(["mean", "var", "count"])
    stats_ = stats_[stats_["count"] > 1]
    if stats_.empty:
        return {"median_sd": math.nan, "top_sd": math.nan, "top_df": 0, "top_configs": 0}
    top = stats_.sort_values("mean", ascending=False).head(max(2, math.ceil(top_share * len(stats_))))
    df = int((top["count"] - 1).sum())
    pooled = float(((top["count"] - 1) * top["var"]).sum() / df) if df else math.nan
    return {"median_sd": float(stats_["var"].pow(0.5).median()), "top_sd": math.sqrt(pooled), "top_df": df,
            "top_configs": len(top)}


def two_config_detectable(sd: float, seeds: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference between two configs' means over `seeds` seeds each that a two-sided
    two-sample t test detects with the given power."""
    from statsmodels.stats.power import TTestIndPower

    if seeds < 2 or not math.isfinite(sd):
        return math.nan
    effect = TTestIndPower().solve_power(effect_size=None, nobs1=seeds, ratio=1.0, alpha=alpha, power=power,
                                         alternative="two-sided")
    return float(effect * sd)
