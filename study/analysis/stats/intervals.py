"""Intervals of a mean: Student t over independent units (seeds, blocks)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05


def level_column(factor: str) -> str:
    return f"level_{factor}"


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
