"""What to pick: the top group, not one winner.

The config with the highest mean is the luckiest of several near-equals as often as it is the best, so
testing every config against the observed best is biased (the winner's curse makes ties look worse).
The top group is a subset selection (in the spirit of Gupta's and Hsu's multiple comparisons with the
best): a config is kept unless some other config is shown better than it:
- for each config i and every rival j, a one-sided t test of their paired difference over the seeds
  they share (Welch's test when they share fewer than two) that j beats i; i leaves the group when the
  smallest of its k - 1 p-values is below alpha after Holm's correction over those k - 1 (for this
  decision the same as Bonferroni). So the truly best config stays in the group with probability at
  least 1 - alpha, whichever config the data happen to rank first;
- a config with a seed that does not learn is left out whatever the test says (a practitioner cares
  that it can fail, and with a few seeds the test cannot see it);
- beside it, a bootstrap probability of being best (seeds resampled with replacement, the same seeds for
  every config, 4,000 resamples, seed 0): how often each config has the highest mean.
With a confirm stage the group is taken among the confirmed configs on their confirm seeds (which played
no part in choosing them); otherwise among every config on the main seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.stats.failures import LEARNED
from study.analysis.stats.intervals import ALPHA, level_column, t_interval

RESAMPLES = 4000
COLUMNS = ["rank", "n", "mean", "diff_to_best", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "beaten_by",
           "all_learn", "p_best", "in_top_group"]


@dataclass
class TopGroup:
    table: pd.DataFrame  # one row per candidate config (factor columns + COLUMNS), best first
    seeds: str  # "confirm" or "main"
    factors: list[str]
    settled: pd.DataFrame = field(default_factory=pd.DataFrame)  # factor, levels in the group, verdict

    @property
    def members(self) -> pd.DataFrame:
        return self.table[self.table["in_top_group"]] if not self.table.empty else self.table

    @property
    def size(self) -> int:
        return len(self.members)


def top_group(frame: pd.DataFrame, factors: list[str], metric: str, candidates: list[tuple] | None = None,
              seeds: str = "main", alpha: float = ALPHA, order: dict[str, list[str]] | None = None) -> TopGroup:
    """The top group among `candidates` (level tuples in `factors` order; default every config in `frame`),
    measured on the trials of `frame` (see the module docstring); `order`: each factor's levels in spec order."""
    columns = [level_column(f) for f in factors]
    data = frame[frame[metric].notna()]
    if not columns:
        data = data.assign(_config="(one config)")
        columns = ["_config"]
    values = data.pivot_table(index=columns, columns="seed", values=metric, aggfunc="mean")
    learned = (data.assign(_l=data[LEARNED].astype(bool) if LEARNED in data else True)
               .groupby(columns, observed=True)["_l"].all())
    if candidates is not None and factors:
        wanted = pd.MultiIndex.from_tuples(candidates) if len(columns) > 1 else pd.Index([c[0] for c in candidates])
        values = values[values.index.isin(wanted)]
    if values.empty:
        return TopGroup(pd.DataFrame(columns=factors + COLUMNS), seeds, factors)
    means = values.mean(axis=1).sort_values(ascending=False, kind="mergesort")
    values = values.loc[means.index]
    best = values.iloc[0]
    rival_p, rival = beaten(values)
    rows = []
    for rank, (key, row) in enumerate(values.iterrows(), start=1):
        key = key if isinstance(key, tuple) else (key,)
        shown = dict(zip(factors, key)) if factors else {}
        shown.update(rank=rank, n=int(row.notna().sum()), mean=float(row.mean()),
                     all_learn=bool(learned.loc[key if len(key) > 1 else key[0]]))
        diff, low, high = _versus_best(row, best) if rank > 1 else (0.0, math.nan, math.nan)
        shown.update(diff_to_best=diff, diff_ci_low=low, diff_ci_high=high, p_value=rival_p[rank - 1],
                     p_holm=min(1.0, rival_p[rank - 1] * max(1, len(values) - 1)),
                     beaten_by=rival[rank - 1])
        rows.append(shown)
    table = pd.DataFrame(rows)
    table["in_top_group"] = (table["p_holm"] >= alpha) & table["all_learn"]
    table.loc[0, "in_top_group"] = True  # the best by mean: no config has a higher mean, so none beats it
    table["p_best"] = probability_best(values)
    out = TopGroup(table[factors + COLUMNS], seeds, factors)
    out.settled = settled_levels(out, order or {})
    return out


def beaten(values: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Per config (row): the smallest one-sided p that some rival beats it (paired over shared seeds, Welch
    when they share fewer than two), and that rival's rank (1-based; 0 when there is no rival)."""
    matrix = values.to_numpy(dtype=float)
    k = len(matrix)
    if k < 2:
        return np.array([math.nan] * k), [0] * k
    if np.isfinite(matrix).all() and matrix.shape[1] >= 2:  # every config on every seed: all pairs at once
        d = matrix[None, :, :] - matrix[:, None, :]  # [i, j, seed]: rival j minus config i
        mean, sd = d.mean(axis=2), d.std(axis=2, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = stats.t.sf(mean / (sd / math.sqrt(matrix.shape[1])), matrix.shape[1] - 1)
        p = np.where(sd == 0, np.where(mean > 0, 0.0, 1.0), p)
    else:
        p = np.ones((k, k))
        for i in range(k):
            for j in range(k):
                if i != j:
                    p[i, j] = _one_sided(matrix[j], matrix[i])
    np.fill_diagonal(p, np.inf)
    return p.min(axis=1), [int(r) + 1 for r in p.argmin(axis=1)]


def _one_sided(rival: np.ndarray, mine: np.ndarray) -> float:
    """p of the one-sided test that `rival` has the higher mean."""
    shared = np.isfinite(rival) & np.isfinite(mine)
    if shared.sum() >= 2:
        d = rival[shared] - mine[shared]
        sd = float(d.std(ddof=1))
        if sd == 0.0:
            return 0.0 if d[0] > 0 else 1.0
        return float(stats.t.sf(d.mean() / (sd / math.sqrt(d.size)), d.size - 1))
    a, b = rival[np.isfinite(rival)], mine[np.isfinite(mine)]
    if a.size < 2 or b.size < 2:
        return 1.0
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def _versus_best(row: pd.Series, best: pd.Series) -> tuple[float, float, float]:
    """This config minus the best, for the reader: the mean paired difference over shared seeds and its 95%
    interval (the unpaired difference, no interval, when they share fewer than two seeds)."""
    shared = row.notna() & best.notna()
    if shared.sum() >= 2:
        d = (row[shared] - best[shared]).to_numpy(dtype=float)
        low, high = t_interval(d)
        return float(d.mean()), low, high
    a, b = row.dropna().to_numpy(dtype=float), best.dropna().to_numpy(dtype=float)
    return (float(a.mean() - b.mean()) if a.size and b.size else math.nan), math.nan, math.nan


def probability_best(values: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """How often each config (row) has the highest mean when the seeds (columns) are resampled with
    replacement, the same seeds for every config (configs missing a seed: nan)."""
    complete = values.notna().all(axis=1).to_numpy()
    out = np.full(len(values), np.nan)
    matrix = values.to_numpy(dtype=float)[complete]
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        return out
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, matrix.shape[1], size=(resamples, matrix.shape[1]))
    means = matrix[:, picks].mean(axis=2)  # configs x resamples
    top = means.max(axis=0)
    winners = means == top  # ties share the win
    share = (winners / winners.sum(axis=0)).sum(axis=1) / resamples
    out[complete] = share
    return out


def settled_levels(group: TopGroup, order: dict[str, list[str]]) -> pd.DataFrame:
    """Per factor: the levels found in the top group (in spec order); one level is `settled`, several `open`."""
    rows = []
    members = group.members
    for factor in group.factors:
        found = set(members[factor].astype(str)) if not members.empty else set()
        known = order.get(factor, [])
        levels = [lv for lv in known if lv in found] + sorted(found - set(known))
        verdict = "settled" if len(levels) == 1 else "open" if levels else "n/a"
        rows.append({"factor": factor, "levels_in_top_group": levels, "verdict": verdict})
    return pd.DataFrame(rows, columns=["factor", "levels_in_top_group", "verdict"])
