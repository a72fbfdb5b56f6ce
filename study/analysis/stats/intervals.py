"""Intervals of a mean: Student t over independent units (seeds, blocks); a proportion's Wilson
interval; TOST equivalence of a paired difference."""

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
    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided one-sample t test on `n` units with standard
    deviation `sd` detects with the given power: (t_{1-a/2} + t_{power}) * sd / sqrt(n), df = n - 1."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def tost(diff: np.ndarray | pd.Series | list[float], margin: float, alpha: float = ALPHA) -> dict[str, float]:
    """Two one-sided t tests (Schuirmann 1987) that the mean paired difference lies inside (-margin, +margin).

    Returns the TOST p-value (the larger of the two one-sided p-values; equivalence is shown when it is below
    alpha) and the matching (1 - 2 alpha) interval: equivalence <=> that interval lies inside the margin.
    """
    x = np.asarray(diff, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return {"p_tost": math.nan, "low": math.nan, "high": math.nan}
    mean, sem, df = float(x.mean()), float(stats.sem(x)), x.size - 1
    if sem == 0.0:
        inside = -margin < mean < margin
        return {"p_tost": 0.0 if inside else 1.0, "low": mean, "high": mean}
    p_lower = float(stats.t.sf((mean + margin) / sem, df))  # H0: mean <= -margin
    p_upper = float(stats.t.cdf((mean - margin) / sem, df))  # H0: mean >= +margin
    low, high = stats.t.interval(1 - 2 * alpha, df, loc=mean, scale=sem)
    return {"p_tost": max(p_lower, p_upper), "low": float(low), "high": float(high)}
