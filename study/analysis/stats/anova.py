"""Variance decomposition of a factorial study, importance, interaction cell means."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.analysis.stats.intervals import level_column


@dataclass(frozen=True)
class Anova:
    """The variance decomposition, or why there is none (`table` empty, `note` says why)."""

    table: pd.DataFrame  # term, factors, df, sum_sq, share, F, p_value
    note: str = ""
    interactions: bool = True
    n: int = 0


def anova(frame: pd.DataFrame, factors: list[str], metric: str, interactions: bool = True) -> Anova:
    """Type II ANOVA with all main effects and (if estimable) all two-way interactions.

    `share` = SS(term) / total SS about the grand mean, so main effects, interactions
    and the residual (higher-order interactions plus seed noise) add up to about 1
    (exactly 1 when the factorial is complete and balanced).
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = frame[[level_column(f) for f in factors] + [metric]].dropna()
    factors = [f for f in factors if data[level_column(f)].nunique() > 1]
    if not factors:
        return Anova(pd.DataFrame(), "no factor takes more than one level among the finished trials", n=len(data))
    mains = [f"C({level_column(f)})" for f in factors]
    pairs = list(itertools.combinations(factors, 2)) if interactions else []
    terms = mains + [f"C({level_column(a)}):C({level_column(b)})" for a, b in pairs]
    params = 1 + sum(data[level_column(f)].nunique() - 1 for f in factors) + sum(
        (data[level_column(a)].nunique() - 1) * (data[level_column(b)].nunique() - 1) for a, b in pairs)
    note = ""
    if pairs and len(data) - params < 1:
        note = "too few trials to estimate two-way interactions beside the main effects: main effects only"
        pairs, terms = [], mains
        params = 1 + sum(data[level_column(f)].nunique() - 1 for f in factors)
    if len(data) - params < 1:
        return Anova(pd.DataFrame(), f"{len(data)} trials leave no residual degrees of freedom for "
                                     f"{params} parameters", n=len(data))
    safe = data.rename(columns={metric: "y"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.ols("y ~ " + " + ".join(terms), data=safe).fit()
        table = anova_lm(model, typ=2)
    total = float(((safe["y"] - safe["y"].mean()) ** 2).sum())
    names = {f"C({level_column(f)})": (f,) for f in factors}
    names.update({f"C({level_column(a)}):C({level_column(b)})": (a, b) for a, b in pairs})
    rows = []
    for term, row in table.iterrows():
        members = names.get(term, ())
        rows.append({
            "term": " x ".join(members) if members else "residual",
            "kind": {1: "main", 2: "interaction"}.get(len(members), "residual"),
            "factors": members,
            "df": float(row["df"]), "sum_sq": float(row["sum_sq"]),
            "share": float(row["sum_sq"]) / total if total > 0 else math.nan,
            "F": float(row["F"]) if pd.notna(row["F"]) else math.nan,
            "p_value": float(row["PR(>F)"]) if pd.notna(row["PR(>F)"]) else math.nan,
        })
    return Anova(pd.DataFrame(rows), note, interactions=bool(pairs), n=len(data))


def importance(result: Anova) -> pd.DataFrame:
    """Factors ranked by their main-effect share of variance (the ANOVA's eta squared).

    `with_interactions` adds every two-way interaction the factor takes part in
    (each interaction counts for both of its factors).
    """
    if result.table.empty:
        return pd.DataFrame(columns=["factor", "main_share", "interaction_share", "with_interactions", "rank"])
    table = result.table
    mains = table[table["kind"] == "main"]
    rows = []
    for _, main in mains.iterrows():
        factor = main["factors"][0]
        inter = table[(table["kind"] == "interaction") & table["factors"].map(lambda fs, f=factor: f in fs)]
        rows.append({"factor": factor, "main_share": main["share"], "main_p_value": main["p_value"],
                     "interaction_share": float(inter["share"].sum()),
                     "with_interactions": main["share"] + float(inter["share"].sum())})
    out = pd.DataFrame(rows).sort_values("main_share", ascending=False).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def strongest_interactions(result: Anova, k: int = 3) -> list[tuple[str, str]]:
    """The k factor pairs whose interaction explains the most variance."""
    if result.table.empty:
        return []
    inter = result.table[result.table["kind"] == "interaction"].sort_values("share", ascending=False)
    return [tuple(fs) for fs in inter["factors"].head(k)]


def cell_means(frame: pd.DataFrame, row_factor: str, column_factor: str, metric: str,
               row_levels: list[str], column_levels: list[str]) -> pd.DataFrame:
    """Mean metric per (row level, column level), others and seeds pooled: a heatmap's data."""
    table = frame.pivot_table(index=level_column(row_factor), columns=level_column(column_factor), values=metric,
                              aggfunc="mean", observed=True)
    return table.reindex(index=row_levels, columns=column_levels)
