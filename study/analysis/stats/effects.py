"""Main effects: each level against its factor's reference level, paired over the other factors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.stats.intervals import ALPHA, level_column, t_interval


def paired_differences(frame: pd.DataFrame, factor: str, level: str, reference: str, factors: list[str],
                       metric: str) -> tuple[pd.DataFrame, int]:
    """Pairs (level, reference) that agree on every other factor and the seed.

    Returns the pairs (block keys, `reference`, `level`, `diff`, `diverged`: either
    side diverged) and the number of trials of either level with a value left
    without a partner (its partner is missing, unfinished or has no value).
    """
    column = level_column(factor)
    blocks = [level_column(f) for f in factors if f != factor] + ["seed"]
    has_value = frame[frame[metric].notna()]
    diverged = has_value["status"].eq("diverged") if "status" in has_value else False
    sides = has_value.assign(_diverged=diverged)[blocks + [column, metric, "_diverged"]]
    ref = sides[sides[column] == reference].drop(columns=column)
    lvl = sides[sides[column] == level].drop(columns=column)
    pairs = ref.merge(lvl, on=blocks, suffixes=("_ref", "_lvl"), validate="one_to_one")
    out = pairs[blocks].copy()
    out["reference"] = pairs[f"{metric}_ref"].astype(float)
    out["level"] = pairs[f"{metric}_lvl"].astype(float)
    out["diff"] = out["level"] - out["reference"]
    out["diverged"] = pairs["_diverged_ref"] | pairs["_diverged_lvl"]
    unpaired = len(ref) + len(lvl) - 2 * len(pairs)
    return out.reset_index(drop=True), int(unpaired)


def main_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str,
                 alpha: float = ALPHA) -> pd.DataFrame:
    """Every non-reference level of every factor vs its reference (the first level).

    Columns: factor, level, reference, n_pairs, unpaired, diverged_in_pairs,
    mean_reference, mean_level, diff, ci_low, ci_high, p_value, p_holm,
    significant (Holm p < alpha), p_improvement, verdict (see `verdict`).
    """
    from statsmodels.stats.multitest import multipletests

    factors = [f for f, levels in factor_levels.items() if len(levels) > 1]
    rows = []
    for factor in factors:
        reference = factor_levels[factor][0]
        for level in factor_levels[factor][1:]:
            pairs, unpaired = paired_differences(frame, factor, level, reference, factors, metric)
            diff = pairs["diff"].to_numpy(dtype=float)
            low, high = t_interval(diff)
            rows.append({
                "factor": factor, "level": level, "reference": reference,
                "n_pairs": int(diff.size), "unpaired": unpaired,
                "diverged_in_pairs": int(pairs["diverged"].sum()),
                "mean_reference": float(pairs["reference"].mean()) if diff.size else math.nan,
                "mean_level": float(pairs["level"].mean()) if diff.size else math.nan,
                "diff": float(diff.mean()) if diff.size else math.nan,
                "ci_low": low, "ci_high": high,
                "p_value": wilcoxon_p(diff),
                "p_improvement": probability_of_improvement(diff),
            })
    table = pd.DataFrame(rows, columns=["factor", "level", "reference", "n_pairs", "unpaired", "diverged_in_pairs",
                                        "mean_reference", "mean_level", "diff", "ci_low", "ci_high", "p_value",
                                        "p_improvement"])
    table["p_holm"] = math.nan
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"], alpha=alpha, method="holm")[1]
    table["significant"] = table["p_holm"] < alpha
    table["verdict"] = [verdict(row) for _, row in table.iterrows()]
    return table


def verdict(row: pd.Series) -> str:
    """One word a sentence may use: `higher`/`lower` only when the corrected test is
    significant *and* the interval of the mean difference excludes zero; `test only`
    when a few extreme pairs make the mean's interval cover zero despite the test."""
    if row["n_pairs"] == 0:
        return "no pairs"
    if not row["significant"]:
        return "not significant"
    if row["ci_low"] > 0 and row["diff"] > 0:
        return "higher"
    if row["ci_high"] < 0 and row["diff"] < 0:
        return "lower"
    return "test only"


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value (Pratt zeros); 1.0 if every pair ties, nan if none."""
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        return math.nan
    if np.all(diff == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.wilcoxon(diff, zero_method="pratt").pvalue)


def probability_of_improvement(diff: np.ndarray) -> float:
    """Share of pairs where the level beats the reference, ties counting half."""
    diff = np.asarray(diff, dtype=float)
    if diff.size == 0:
        return math.nan
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)
