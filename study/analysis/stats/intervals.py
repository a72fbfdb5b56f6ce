"""Intervals of a mean: Student t over independent units (seeds, blocks); a proportion's Wilson
interval; TOST equivalence of a paired difference; the smallest detectable difference. The proportion,
equivalence and power computations are statsmodels' (proportion_confint, ttost_paired, TTestPower)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.80  # the power at which the smallest detectable difference is stated


def level_column(factor: str) -> str:
    return f"level_{factor}"


def in_unit_interval(values: pd.Series) -> bool:
    """Whether every finite value lies in [0, 1]: only then is a mean's interval clipped to [0, 1] and a
    difference's to [-1, 1] (an accuracy; not a loss, nor another experiment's accuracy in percent)."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    x = x[np.isfinite(x)]
    return bool(((x >= 0) & (x <= 1)).all())


def t_interval(values: np.ndarray | pd.Series | list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean; (nan, nan) with fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    mean = float(x.mean())
    sem = float(stats.sem(x))
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def wilson_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (ties may count half, so `successes` may be fractional);
    unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n successes."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return math.nan, math.nan
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return max(0.0, float(low)), min(1.0, float(high))


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided one-sample t test on `n` units with standard
    deviation `sd` detects with the given power (statsmodels' TTestPower, noncentral t)."""
    from statsmodels.stats.power import TTestPower

    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0.0:
        return 0.0
    effect = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    # The two-sided power is symmetric in the effect: the solver may land on the negative root, as a 1-element
    # array (n = 73 does), so take the magnitude of its one value.
    return abs(float(np.asarray(effect, dtype=float).reshape(-1)[0])) * sd


def tost(diff: np.ndarray | pd.Series | list[float], margin: float, alpha: float = ALPHA) -> dict[str, float]:
    """Two one-sided t tests (Schuirmann 1987; statsmodels' ttost_paired) that the mean paired difference lies
    inside (-margin, +margin).

    Returns the TOST p-value (the larger of the two one-sided p-values; equivalence is shown when it is below
    alpha) and the matching (1 - 2 alpha) interval: equivalence <=> that interval lies inside the margin.
    """
    from statsmodels.stats.weightstats import ttost_paired

    x = np.asarray(diff, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return {"p_tost": math.nan, "low": math.nan, "high": math.nan}
    mean, sem, df = float(x.mean()), float(stats.sem(x)), x.size - 1
    if sem == 0.0:
        inside = -margin < mean < margin
        return {"p_tost": 0.0 if inside else 1.0, "low": mean, "high": mean}
    p_tost = float(ttost_paired(x, np.zeros_like(x), -margin, margin)[0])
    low, high = stats.t.interval(1 - 2 * alpha, df, loc=mean, scale=sem)
    return {"p_tost": p_tost, "low": float(low), "high": float(high)}
