"""What to pick: the top group, not one winner.

The config with the highest mean is the luckiest of several near-equals as often as it is the best.
The top group is every config the data cannot tell apart from the best:
- each other config is compared with the best by a two-sided t test of their paired difference over
  the seeds they share (Welch's test when they share fewer than two), Holm-corrected over the
  comparisons; a config stays in the group unless the corrected test says it is worse;
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
COLUMNS = ["rank", "n", "mean", "diff_to_best", "diff_ci_low", "diff_ci_high", "p_value", "p_holm", "all_learn",
           "p_best", "in_top_group"]


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
              seeds: str = "main", alpha: float = ALPHA) -> TopGroup:
    """The top group among `candidates` (level tuples in `factors` order; default every config in `frame`),
    measured on the trials of `frame` (see the module docstring)."""
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
    rows, p_values = [], []
    for rank, (key, row) in enumerate(values.iterrows(), start=1):
        key = key if isinstance(key, tuple) else (key,)
        shown = dict(zip(factors, key)) if factors else {}
        shown.update(rank=rank, n=int(row.notna().sum()), mean=float(row.mean()), all_learn=bool(learned.loc[key
                     if len(key) > 1 else key[0]]))
        diff, low, high, p = _versus_best(row, best) if rank > 1 else (0.0, math.nan, math.nan, math.nan)
        shown.update(diff_to_best=diff, diff_ci_low=low, diff_ci_high=high, p_value=p)
        rows.append(shown)
        p_values.append(p)
    table = pd.DataFrame(rows)
    table["p_holm"] = math.nan
    tested = table["p_value"].notna()
    if tested.any():
        from statsmodels.stats.multitest import multipletests
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"], alpha=alpha, method="holm")[1]
    worse = (table["p_holm"] < alpha) & (table["diff_to_best"] < 0)
    table["in_top_group"] = ~worse & table["all_learn"]
    table.loc[0, "in_top_group"] = True  # the best by mean, whatever its seeds: the others are measured against it
    table["p_best"] = probability_best(values)
    out = TopGroup(table[factors + COLUMNS], seeds, factors)
    out.settled = settled_levels(out)
    return out


def _versus_best(row: pd.Series, best: pd.Series) -> tuple[float, float, float, float]:
    """This config minus the best: the paired difference over shared seeds (mean, 95% interval, p), or
    Welch's unpaired test when they share fewer than two seeds."""
    shared = row.notna() & best.notna()
    if shared.sum() >= 2:
        d = (row[shared] - best[shared]).to_numpy(dtype=float)
        low, high = t_interval(d)
        if np.all(d == d[0]):
            p = 1.0 if d[0] == 0 else 0.0
        else:
            p = float(stats.ttest_1samp(d, 0.0).pvalue)
        return float(d.mean()), low, high, p
    a, b = row.dropna().to_numpy(dtype=float), best.dropna().to_numpy(dtype=float)
    if a.size < 2 or b.size < 2:
        return float(a.mean() - b.mean()) if a.size and b.size else math.nan, math.nan, math.nan, math.nan
    test = stats.ttest_ind(a, b, equal_var=False)
    return float(a.mean() - b.mean()), math.nan, math.nan, float(test.pvalue)


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


def settled_levels(group: TopGroup) -> pd.DataFrame:
    """Per factor: the levels found in the top group; one level is `settled`, several are `open`."""
    rows = []
    members = group.members
    for factor in group.factors:
        levels = list(dict.fromkeys(members[factor].astype(str))) if not members.empty else []
        verdict = "settled" if len(levels) == 1 else "open" if levels else "n/a"
        rows.append({"factor": factor, "levels_in_top_group": levels, "verdict": verdict})
    return pd.DataFrame(rows, columns=["factor", "levels_in_top_group", "verdict"])
