"""Evaluation noise: the validation set is a sample of images, so an accuracy measured on it has a
sampling error of its own, beside the scatter over seeds.

Every seed of a config is scored on the *same* images, so the seeds' scatter does not contain this
error: a config's interval over seeds says how precisely its accuracy *on these images* is known.
As an estimate of the config's accuracy on new images of the same kind, the binomial sampling error
of N images, sqrt(p (1 - p) / N), adds to it. At 97% on 10,000 images that is 0.17 pp, the size of the
seed SD of good configs; on 300 images one image alone moves accuracy by 0.33 pp.

The combined interval: se^2 = s^2 / n + p (1 - p) / N, with Welch-Satterthwaite degrees of freedom
(the binomial part counts as known: df = (n - 1) (se^2 / (s^2 / n))^2), so it is never zero-width
while N is finite, even when every seed scores the same.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from study.analysis.stats.intervals import CONFIDENCE

SMALL_STEP = 0.001  # a validation set where one image moves accuracy by 0.1 pp or more gets a warning


def binomial_sd(accuracy: float, size: int) -> float:
    """The sampling SD of an accuracy measured on `size` images (nan when unknown)."""
    if size <= 0 or not math.isfinite(accuracy):
        return math.nan
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / size)


def one_image(size: int) -> float:
    """How much one image moves the accuracy (nan when the size is not known)."""
    return 1.0 / size if size > 0 else math.nan


def too_small(size: int) -> bool:
    return size > 0 and one_image(size) >= SMALL_STEP


def with_evaluation_noise(values: np.ndarray, size: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The interval of a config's accuracy over seeds widened by the validation set's sampling error
    (see the module docstring); the interval over seeds alone when `size` is unknown. (nan, nan) without
    values or with one (the seed noise is then unknown, and the binomial part alone would understate it)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    mean = float(x.mean())
    seed_var = float(x.var(ddof=1)) / x.size
    eval_var = binomial_sd(mean, size) ** 2 if size > 0 else 0.0
    total = seed_var + eval_var
    df = (x.size - 1) * (total / seed_var) ** 2 if seed_var > 0 else math.inf
    if total == 0.0:
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, df) if math.isfinite(df) else stats.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(total)
    return max(mean - half * se, 0.0), min(mean + half * se, 1.0)
