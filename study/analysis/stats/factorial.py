"""Variance decomposition of a complete factorial with seed replicates: the saturated model.

Every term (each main effect and each interaction of every order) gets its sum of squares from the
config means; what is left is the scatter of the seeds within each config, the only honest error
term (a two-way model's residual would mix seed noise with every 3- to k-way interaction). Each
term is F-tested against that seed noise, with Holm's correction over all terms.

Computation: the config means form a k-dimensional array; a term's effect is the inclusion-exclusion
of the marginal means over its factors (the standard orthogonal decomposition of a balanced
factorial), and its sum of squares is the number of seeds per config times the sum of its squared
effects over all configs. When configs have different numbers of seeds (a missing trial), config
means are weighted equally and the harmonic mean of the seed counts is used (the unweighted-means
analysis; exact when balanced). A factorial with a config that has no finished trial is not
decomposed, and the note says why.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.stats.intervals import ALPHA, level_column

MAX_FACTORS = 10  # 2^10 - 1 terms; beyond that the table is unreadable anyway


@dataclass(frozen=True)
class Decomposition:
    """The saturated decomposition, or why there is none (`terms` empty, `note` says why)."""

    terms: pd.DataFrame  # term, factors, order, df, sum_sq, share, F, p_value, p_holm
    seed_noise: dict = field(default_factory=dict)  # df, sum_sq, share, mean_sq, sd
    note: str = ""
    n: int = 0
    configs: int = 0

    @property
    def empty(self) -> bool:
        return self.terms.empty


def decompose(frame: pd.DataFrame, factors: list[str], metric: str, alpha: float = ALPHA) -> Decomposition:
    """The saturated factorial decomposition of `metric` over `factors` (see the module docstring)."""
    from statsmodels.stats.multitest import multipletests

    columns = [level_column(f) for f in factors]
    data = frame[columns + [metric]].dropna()
    factors = [f for f in factors if data[level_column(f)].nunique() > 1]
    if not factors:
        return Decomposition(pd.DataFrame(), note="no factor takes more than one level among the finished trials",
                             n=len(data))
    if len(factors) > MAX_FACTORS:
        return Decomposition(pd.DataFrame(), note=f"{len(factors)} factors: more than {MAX_FACTORS} to decompose",
                             n=len(data))
    columns = [level_column(f) for f in factors]
    levels = [sorted(data[c].unique(), key=str) for c in columns]
    cells = data.groupby(columns, observed=True)[metric].agg(["mean", "count", "var"])
    expected = math.prod(len(lv) for lv in levels)
    if len(cells) < expected:
        return Decomposition(pd.DataFrame(), note=f"only {len(cells)} of the {expected} configs of the full "
                                                  "factorial have a finished trial, so there is no complete "
                                                  "factorial to decompose", n=len(data), configs=len(cells))
    means = np.empty([len(lv) for lv in levels])
    for key, row in cells.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        means[tuple(lv.index(k) for lv, k in zip(levels, key))] = row["mean"]
    counts = cells["count"].to_numpy(dtype=float)
    n_h = len(counts) / float((1.0 / counts).sum())  # harmonic mean of seeds per config
    rows = []
    for order in range(1, len(factors) + 1):
        for members in itertools.combinations(range(len(factors)), order):
            effect = _term_effect(means, members)
            rows.append({"term": " x ".join(factors[i] for i in members), "factors": tuple(factors[i] for i in members),
                         "order": order, "df": math.prod(len(levels[i]) - 1 for i in members),
                         "sum_sq": n_h * float((np.broadcast_to(effect, means.shape) ** 2).sum())})
    terms = pd.DataFrame(rows)
    df_error = int((counts - 1).sum())
    ss_error = float(((cells["count"] - 1) * cells["var"].fillna(0.0)).sum())
    total = float(terms["sum_sq"].sum()) + ss_error
    terms["share"] = terms["sum_sq"] / total if total > 0 else math.nan
    note = ""
    ms_error = ss_error / df_error if df_error > 0 else math.nan
    if df_error < 1:
        note = "one seed per config: no seed noise to test the terms against, so shares only (no p-values)"
    elif ms_error == 0.0:
        note = "every config's seeds agree exactly: no seed noise to test against, so shares only (no p-values)"
    if note:
        terms["F"], terms["p_value"], terms["p_holm"] = math.nan, math.nan, math.nan
    else:
        terms["F"] = (terms["sum_sq"] / terms["df"]) / ms_error
        terms["p_value"] = stats.f.sf(terms["F"], terms["df"], df_error)
        terms["p_holm"] = multipletests(terms["p_value"], alpha=alpha, method="holm")[1]
    seed_noise = {"df": df_error, "sum_sq": ss_error, "share": ss_error / total if total > 0 else math.nan,
                  "mean_sq": ms_error, "sd": math.sqrt(ms_error) if math.isfinite(ms_error) else math.nan}
    return Decomposition(terms, seed_noise, note, n=len(data), configs=len(cells))


def _term_effect(means: np.ndarray, members: tuple[int, ...]) -> np.ndarray:
    """The term's effect per config: sum over subsets U of the term of (-1)^(|term|-|U|) * the mean over
    every factor outside U (Moebius inversion of the marginal means; broadcastable to the full shape)."""
    axes = range(means.ndim)
    effect = np.zeros([1] * means.ndim)
    for size in range(len(members) + 1):
        for subset in itertools.combinations(members, size):
            marginal = means.mean(axis=tuple(a for a in axes if a not in subset), keepdims=True)
            effect = effect + (-1) ** (len(members) - size) * marginal
    return effect


def grouped_terms(result: Decomposition, alpha: float = ALPHA) -> pd.DataFrame:
    """What a reader compares: each main effect and each two-way term, higher orders grouped by order,
    then seed noise. `significant`: terms of the row with Holm p < alpha."""
    if result.empty:
        return pd.DataFrame(columns=["term", "kind", "terms", "df", "share", "p_holm", "significant"])
    terms = result.terms
    rows = []
    for _, term in terms[terms["order"] <= 2].sort_values(["order", "share"], ascending=[True, False]).iterrows():
        rows.append({"term": term["term"], "kind": "main" if term["order"] == 1 else "two-way", "terms": 1,
                     "df": int(term["df"]), "share": term["share"], "p_holm": term["p_holm"],
                     "significant": int(term["p_holm"] < alpha)})
    for order, group in terms[terms["order"] > 2].groupby("order"):
        largest = group.sort_values("share", ascending=False).iloc[0]
        rows.append({"term": f"all {order}-way terms (largest: {largest['term']}, {100 * largest['share']:.1f}%)",
                     "kind": f"{order}-way",
                     "terms": len(group), "df": int(group["df"].sum()), "share": float(group["share"].sum()),
                     "p_holm": float(group["p_holm"].min()), "significant": int((group["p_holm"] < alpha).sum())})
    noise = result.seed_noise
    rows.append({"term": "seed noise (within config)", "kind": "error", "terms": 0, "df": int(noise["df"]),
                 "share": noise["share"], "p_holm": math.nan, "significant": 0})
    return pd.DataFrame(rows)


def total_effects(result: Decomposition) -> pd.DataFrame:
    """Factors ranked by total-effect share: every term the factor takes part in, of any order (the
    variance-based total effect of Sobol / Saltelli). Main and two-way shares beside it; a term counts
    for each of its factors, so totals add up to more than 100%."""
    columns = ["rank", "factor", "main_share", "two_way_share", "higher_share", "total_share", "main_p_holm"]
    if result.empty:
        return pd.DataFrame(columns=columns)
    terms = result.terms
    rows = []
    for factor in dict.fromkeys(f for fs in terms["factors"] for f in fs):
        mine = terms[terms["factors"].map(lambda fs, f=factor: f in fs)]
        main = mine[mine["order"] == 1].iloc[0]
        rows.append({"factor": factor, "main_share": main["share"],
                     "two_way_share": float(mine.loc[mine["order"] == 2, "share"].sum()),
                     "higher_share": float(mine.loc[mine["order"] > 2, "share"].sum()),
                     "total_share": float(mine["share"].sum()), "main_p_holm": main["p_holm"]})
    out = pd.DataFrame(rows).sort_values("total_share", ascending=False).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[columns]


def strongest_interactions(result: Decomposition, k: int = 3) -> list[tuple[str, str]]:
    """The k factor pairs whose two-way term explains the most variance."""
    if result.empty:
        return []
    two = result.terms[result.terms["order"] == 2].sort_values("share", ascending=False)
    return [tuple(fs) for fs in two["factors"].head(k)]


def cell_means(frame: pd.DataFrame, row_factor: str, column_factor: str, metric: str,
               row_levels: list[str], column_levels: list[str]) -> pd.DataFrame:
    """Mean metric per (row level, column level), others and seeds pooled: a heatmap's data."""
    table = frame.pivot_table(index=level_column(row_factor), columns=level_column(column_factor), values=metric,
                              aggfunc="mean", observed=True)
    return table.reindex(index=row_levels, columns=column_levels)
