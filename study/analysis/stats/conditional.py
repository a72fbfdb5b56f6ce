"""Conditional effects: each factor's effect within each level of every other factor (its moderator).

A main effect averages over the other factors' levels, corners no one would use included; when the
effect changes sign across a moderator (a *qualitative interaction*), the average can read "no effect"
while the effect is large and opposite in two conditions. So every contrast (level vs reference) is
also measured inside each level of each other factor, by block (study.analysis.stats.blocks.within:
the blocks are the combinations of the remaining factors, seeds averaged first).

Two flags per (contrast, moderator): `sign_change` when two sub-effects' unadjusted 95% intervals lie
on opposite sides of zero, and `sign_change_holm` when both are also significant after Holm's
correction over the whole table (the table holds many sub-effects, so a few unadjusted flags are
expected by chance). Findings call the Holm-backed ones reversals and say which flags are unadjusted.
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from study.analysis.stats.blocks import within
from study.analysis.stats.intervals import ALPHA, level_column

COLUMNS = ["factor", "level", "reference", "moderator", "moderator_level", "effect", "ci_low", "ci_high", "median",
           "blocks", "unit", "pairs", "p_value", "p_holm", "sign_change", "sign_change_holm"]


def conditional_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str,
                        keep: str | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Every contrast (each non-reference level vs the reference) within each level of every other factor."""
    from statsmodels.stats.multitest import multipletests

    factors = [f for f, levels in factor_levels.items() if len(levels) > 1]
    rows = []
    for factor in factors:
        reference = factor_levels[factor][0]
        for level in factor_levels[factor][1:]:
            for moderator in (m for m in factors if m != factor):
                for moderator_level in factor_levels[moderator]:
                    effect = within(frame, factor_levels, factor, level, reference, metric,
                                    {moderator: [moderator_level]}, keep)
                    rows.append({"factor": factor, "level": level, "reference": reference, "moderator": moderator,
                                 "moderator_level": moderator_level, "effect": effect["diff"],
                                 "ci_low": effect["ci_low"], "ci_high": effect["ci_high"],
                                 "median": effect["median"], "blocks": effect["blocks"], "unit": effect["unit"],
                                 "pairs": effect["pairs"], "p_value": effect["p_value"]})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "sign_change", "sign_change_holm")])
    table["p_holm"] = math.nan
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"], alpha=alpha, method="holm")[1]
    table["sign_change"] = False
    table["sign_change_holm"] = False
    for _, index in table.groupby(["factor", "level", "moderator"], sort=False).groups.items():
        group = table.loc[index]
        table.loc[index, "sign_change"] = bool((group["ci_low"] > 0).any() and (group["ci_high"] < 0).any())
        significant = group["p_holm"] < alpha
        table.loc[index, "sign_change_holm"] = bool((significant & (group["effect"] > 0)).any()
                                                    and (significant & (group["effect"] < 0)).any())
    return table[COLUMNS]


def sign_changes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (contrast, moderator) whose sub-effects change sign: where the level helps, where it hurts
    (unadjusted 95% intervals), and whether the reversal survives Holm's correction."""
    columns = ["factor", "level", "reference", "moderator", "holds", "reverses", "holm", "spread"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    flagged = table[table["sign_change"]]
    for (factor, level, moderator), group in flagged.groupby(["factor", "level", "moderator"], sort=False):
        rows.append({"factor": factor, "level": level, "reference": group["reference"].iloc[0],
                     "moderator": moderator,
                     "holds": list(group.loc[group["ci_low"] > 0, "moderator_level"]),
                     "reverses": list(group.loc[group["ci_high"] < 0, "moderator_level"]),
                     "holm": bool(group["sign_change_holm"].iloc[0]),
                     "spread": float(group["effect"].max() - group["effect"].min())})
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["holm", "spread"], ascending=False).reset_index(drop=True)


def strongest_conditional(table: pd.DataFrame, rows: int = 8) -> pd.DataFrame:
    """The sub-effects that differ most from their contrast's average over the moderator's levels: where a
    practitioner's condition changes the answer most."""
    if table.empty:
        return table
    mean = table.groupby(["factor", "level", "moderator"], sort=False)["effect"].transform("mean")
    out = table.assign(departure=(table["effect"] - mean).abs())
    return out.sort_values("departure", ascending=False).head(rows).drop(columns="departure")


def strongest_higher_order(terms: pd.DataFrame, min_order: int = 3) -> pd.Series | None:
    """The decomposition's term of order >= `min_order` with the largest share of variance (None if none)."""
    if terms is None or terms.empty:
        return None
    higher = terms[terms["order"] >= min_order]
    if higher.empty:
        return None
    return higher.sort_values("share", ascending=False).iloc[0]


def term_contrasts(frame: pd.DataFrame, factor_levels: dict[str, list[str]], members: tuple[str, ...],
                   metric: str, keep: str | None = None) -> pd.DataFrame:
    """Inside a higher-order term: each member's contrasts within every combination of the other members'
    levels (e.g. batch norm's effect at relu/normal, relu/xavier, ...), by block over the factors outside
    the term."""
    rows = []
    for factor in members:
        others = [m for m in members if m != factor]
        reference = factor_levels[factor][0]
        for level in factor_levels[factor][1:]:
            for combo in itertools.product(*(factor_levels[m] for m in others)):
                where = {m: [v] for m, v in zip(others, combo)}
                effect = within(frame, factor_levels, factor, level, reference, metric, where, keep)
                rows.append({"factor": factor, "level": level, "reference": reference,
                             "condition": ", ".join(f"{m}={v}" for m, v in zip(others, combo)),
                             "effect": effect["diff"], "ci_low": effect["ci_low"], "ci_high": effect["ci_high"],
                             "blocks": effect["blocks"], "unit": effect["unit"]})
    return pd.DataFrame(rows)


def term_cells(frame: pd.DataFrame, members: tuple[str, ...], metric: str,
               factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """The mean of `metric` in each combination of the term's levels (the other factors and seeds averaged),
    in the levels' spec order."""
    columns = [level_column(m) for m in members]
    cells = frame.groupby(columns, observed=True)[metric].agg(["mean", "count"]).reset_index()
    cells = cells.rename(columns=dict(zip(columns, members)))
    order = {m: {lv: i for i, lv in enumerate(factor_levels[m])} for m in members}
    return cells.sort_values(list(members), key=lambda col: col.map(order[col.name])).reset_index(drop=True)
