"""Repeated confidence intervals: intervals that stay valid however many times a study looks and whenever it stops.

An adaptive study looks at its results after every round of seeds and stops measuring a target once its interval
decides it. A fixed-sample 95% interval looked at 9 times misses far more often than 5% of the time (the
optional-stopping problem). The repeated confidence intervals of Jennison & Turnbull (1989) cover the truth at
every look *simultaneously* with probability 1 - alpha, so any decision read off them (beyond the margin, within
it) is wrong with probability at most alpha, whatever rule chose when to stop:

- the looks are fixed in advance by the spec: after 2, 3, ..., max_seeds seeds (information fraction
  t = seeds / max_seeds: each look's estimate is a mean over independent seeds);
- alpha is spent over the looks by a Lan-DeMets spending function (O'Brien-Fleming type by default:
  almost nothing at the first looks, nearly the whole alpha at the last, so a study that runs to
  max_seeds decides almost what the fixed design would);
- the critical values come from the joint normal law of the looks (Brownian motion in information time),
  integrated numerically (the Armitage-McPherson-Rowe recursion), not from a Bonferroni bound;
- with an estimated variance each look uses Student t at the same nominal level as its normal
  boundary (Jennison & Turnbull 2000, section 11.5), with the look's degrees of freedom.
A look a target never reaches (it was decided earlier) spends nothing extra; a look repeated on the same data
(a config that stopped) is the same look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

SPENDING = ("obrien_fleming", "pocock")
GRID_STEP = 0.01  # integration grid of the recursion, in units of the Brownian motion


def spent(fraction: float, alpha: float, kind: str = "obrien_fleming") -> float:
    """Lan-DeMets spending function: the two-sided alpha spent by information fraction `fraction` (0..1]."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if kind == "obrien_fleming":
        return float(2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t)))
    if kind == "pocock":
        return float(alpha * math.log(1.0 + (math.e - 1.0) * t))
    raise ValueError(f"unknown spending function {kind!r}; known: {', '.join(SPENDING)}")


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float, kind: str = "obrien_fleming") -> tuple[float, ...]:
    """Two-sided z critical values c_k of the looks at information `fractions` (increasing, last <= 1): under
    no effect, P(|Z_k| >= c_k first at look k) equals the alpha spent between look k - 1 and look k."""
    sqrt_t = [math.sqrt(t) for t in fractions]
    out: list[float] = []
    grid = density = None  # the sub-density of W(t_{k-1}) on paths that never crossed
    previous_t, previous_spent = 0.0, 0.0
    for k, t in enumerate(fractions):
        target = spent(t, alpha, kind) - previous_spent
        step = t - previous_t
        if target <= 0:  # nothing to spend at this look: it can never decide
            out.append(math.inf)
        elif density is None:
            out.append(float(stats.norm.isf(target / 2.0)))
        else:
            scale = math.sqrt(step)

            def exit_probability(c: float) -> float:
                edge = c * sqrt_t[k]
                inside = stats.norm.cdf((edge - grid) / scale) - stats.norm.cdf((-edge - grid) / scale)
                return float(np.sum(density * (1.0 - inside)) * GRID_STEP)

            high = 40.0
            if exit_probability(high) >= target:
                out.append(high)
            else:
                out.append(float(optimize.brentq(lambda c: exit_probability(c) - target, 0.0, high, xtol=1e-7)))
        previous_spent = spent(t, alpha, kind) if target > 0 else previous_spent
        # carry the density of the paths still inside to this look
        edge = out[-1] * sqrt_t[k] if math.isfinite(out[-1]) else 12.0 * sqrt_t[k]
        new_grid = np.arange(-edge, edge + GRID_STEP / 2, GRID_STEP)
        if density is None:
            new_density = stats.norm.pdf(new_grid, scale=math.sqrt(t))
        else:
            kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / math.sqrt(step)) / math.sqrt(step)
            new_density = kernel @ density * GRID_STEP
        grid, density, previous_t = new_grid, new_density, t
    return tuple(out)


def nominal_levels(fractions: tuple[float, ...], alpha: float, kind: str = "obrien_fleming") -> tuple[float, ...]:
    """The two-sided nominal significance level of each look's boundary (what a t look uses)."""
    return tuple(float(2.0 * stats.norm.sf(c)) if math.isfinite(c) else 0.0
                 for c in boundaries(tuple(fractions), alpha, kind))


def critical_value(level: float, df: float) -> float:
    """The two-sided critical value at nominal `level`: Student t with `df` (normal when df is infinite)."""
    if level <= 0.0 or not df > 0:
        return math.inf
    if math.isinf(df):
        return float(stats.norm.isf(level / 2.0))
    return float(stats.t.isf(level / 2.0, df))


@dataclass(frozen=True)
class VariancePrior:
    """Empirical-Bayes prior of many sample variances (Smyth 2004): each true variance is s0^2 d0 / chi2(d0),
    with log s0^2 = intercept + slope x for a covariate x (limma-trend; slope 0 without one)."""

    d0: float
    intercept: float = math.nan
    slope: float = 0.0

    def scale(self, x: np.ndarray | float = 0.0) -> np.ndarray:
        return np.exp(self.intercept + self.slope * np.asarray(x, dtype=float))

    def posterior(self, variance: np.ndarray, df: float, x: np.ndarray | float = 0.0) -> tuple[np.ndarray, float]:
        """Moderated variances and their degrees of freedom (d0 + df)."""
        s2 = np.asarray(variance, dtype=float)
        if self.d0 == 0.0 or not math.isfinite(self.intercept):
            return s2, float(df)
        s0 = np.broadcast_to(self.scale(x), s2.shape)
        if math.isinf(self.d0):
            return s0.astype(float), math.inf
        return (self.d0 * s0 + df * s2) / (self.d0 + df), self.d0 + df


def variance_prior(variances: np.ndarray, df: float, covariate: np.ndarray | None = None) -> VariancePrior:
    """Fit the prior to sample variances with `df` degrees of freedom each (limma's fitFDist, moment form).
    d0 is infinite when the variances scatter no more than sampling alone explains, 0 when nothing can be
    pooled (fewer than 4 usable variances)."""
    s2 = np.asarray(variances, dtype=float)
    x = np.zeros_like(s2) if covariate is None else np.asarray(covariate, dtype=float)
    keep = np.isfinite(s2) & (s2 > 0) & np.isfinite(x)
    if keep.sum() < 4:
        return VariancePrior(0.0)
    e = np.log(s2[keep]) - special.digamma(df / 2) + math.log(df / 2)
    basis = np.ones((int(keep.sum()), 1)) if covariate is None else np.column_stack([np.ones(int(keep.sum())), x[keep]])
    coef, *_ = np.linalg.lstsq(basis, e, rcond=None)
    residual = e - basis @ coef
    spread = float(residual @ residual / max(residual.size - basis.shape[1], 1) - special.polygamma(1, df / 2))
    d0 = math.inf if spread <= 0 else 2.0 * _trigamma_inverse(spread)
    shift = 0.0 if math.isinf(d0) else float(special.digamma(d0 / 2) - math.log(d0 / 2))
    return VariancePrior(d0, float(coef[0] + shift), float(coef[1]) if covariate is not None else 0.0)


def _trigamma_inverse(y: float) -> float:
    """x with trigamma(x) = y (Newton's method of Smyth 2004)."""
    if y > 1e7:
        return 1.0 / math.sqrt(y)
    if y < 1e-6:
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(50):
        tri = float(special.polygamma(1, x))
        step = tri * (1 - tri / y) / float(special.polygamma(2, x))
        x += step
        if -step / x < 1e-8:
            break
    return x
