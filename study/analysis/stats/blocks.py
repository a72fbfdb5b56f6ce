"""Effects whose unit is the block: each level against its factor's reference, one difference per
combination of the other factors' levels (seeds averaged first).

Why blocks: in a factorial with seed replicates the seeds of one block nearly repeat each other
while blocks differ a lot, so treating every (block, seed) pair as an independent observation
(pseudo-replication) makes intervals far too narrow. Here the unit of the interval and the test is
the block; seed noise gets its own, separately named interval (the same mean with the blocks held
fixed: how precisely these particular blocks were measured), and the pseudo-replicated interval is
kept in the table only to show the difference. A study with a single block (one factor) has seeds
as its only replication: its unit is then the seed, and the table says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.stats.intervals import ALPHA, CONFIDENCE, detectable_difference, in_unit_interval, level_column, \
    t_interval, wilson_interval

NOOP_SHARE = 0.5  # a level whose pairs are bit-identical to the reference's in at least this share is a no-op
IDENTITY = ("final_val_accuracy", "final_val_loss", "test_accuracy")  # results that must all agree for "identical"
BOUNDED = ("accuracy", "failed")  # metrics in [0, 1]: a difference of two lies in [-1, 1]
BINARY = "failed"  # a 0/1 outcome per trial

COLUMNS = ["factor", "level", "reference", "unit", "blocks", "pairs", "unpaired", "equal_pairs", "equal_values",
           "tied_blocks",
           "diverged_in_pairs", "mean_reference", "mean_level", "diff", "median", "hodges_lehmann", "ci_low",
           "ci_high", "se", "df", "p_value", "p_holm", "ci_low_adj", "ci_high_adj", "significant", "p_improvement",
           "p_improvement_low", "p_improvement_high", "seed_ci_low", "seed_ci_high", "pseudo_ci_low",
           "pseudo_ci_high", "detectable", "verdict"]
ADJUSTED = ("p_holm", "ci_low_adj", "ci_high_adj", "significant", "verdict")  # filled once the table is complete


def paired_differences(frame: pd.DataFrame, factor: str, level: str, reference: str, factors: list[str],
                       metric: str, keep: str | None = None) -> tuple[pd.DataFrame, int]:
    """Pairs (level, reference) that agree on every other factor and the seed.

    With `keep` (a boolean column), only pairs where both trials have it true. Returns the pairs
    (block keys, seed, `reference`, `level`, `diff`, `diverged`, `identical`) and the number of trials
    of either level left without a partner (missing, unfinished, no value, or not kept). `identical`:
    the two trials agree bit for bit on the metric and on every other result in IDENTITY (two trials
    that both predict the majority class share their accuracy but not their loss: not a no-op).
    """
    column = level_column(factor)
    others = [level_column(f) for f in factors if f != factor]
    data = frame[frame[metric].notna() & frame[column].isin([level, reference])]
    if keep is not None:
        data = data[data[keep].astype(bool)]
    diverged = data["status"].eq("diverged") if "status" in data else pd.Series(False, index=data.index)
    identity = [c for c in IDENTITY if c in data and c != metric and data[c].notna().any()]  # results recorded
    sides = data.assign(_diverged=diverged)[others + ["seed", column, metric, "_diverged"] + identity]
    ref = sides[sides[column] == reference].drop(columns=column)
    lvl = sides[sides[column] == level].drop(columns=column)
    pairs = ref.merge(lvl, on=others + ["seed"], suffixes=("_ref", "_lvl"), validate="one_to_one")
    out = pairs[others + ["seed"]].copy()
    out["reference"] = pairs[f"{metric}_ref"].astype(float)
    out["level"] = pairs[f"{metric}_lvl"].astype(float)
    out["diff"] = out["level"] - out["reference"]
    out["diverged"] = pairs["_diverged_ref"] | pairs["_diverged_lvl"]
    out["identical"] = out["diff"] == 0
    for name in identity:
        out["identical"] &= pairs[f"{name}_ref"].to_numpy() == pairs[f"{name}_lvl"].to_numpy()
    return out.reset_index(drop=True), int(len(ref) + len(lvl) - 2 * len(pairs))


def block_differences(pairs: pd.DataFrame, others: list[str]) -> pd.DataFrame:
    """One row per block: the mean over its seeds of the paired difference, the number of seeds, and
    the within-block variance of the per-seed differences (seed noise)."""
    if not others:  # one block: seeds are the only replication
        return pd.DataFrame({"diff": pairs["diff"], "n": 1, "var": math.nan})
    grouped = pairs.groupby(others, sort=False, observed=True)["diff"]
    return pd.DataFrame({"diff": grouped.mean(), "n": grouped.count(), "var": grouped.var(ddof=1)}).reset_index()


def effect_row(pairs: pd.DataFrame, others: list[str], confidence: float = CONFIDENCE, bounded: bool = True,
               binary: bool = False) -> dict:
    """The numbers of one comparison from its pairs (see the module docstring for the units); `bounded`:
    the metric lies in [0, 1], so the intervals of a difference are clipped to [-1, 1]; `binary`: a 0/1
    outcome (failed), whose t interval degenerates to a point when every unit has the same difference
    (e.g. 3 of 3 fail vs 0 of 3): Newcombe's score interval for two proportions is given then instead."""
    blocks = block_differences(pairs, others)
    d = blocks["diff"].to_numpy(dtype=float)
    n_blocks = int(d.size)
    row = {"unit": "blocks" if others else "seeds", "blocks": n_blocks, "pairs": int(len(pairs)),
           "equal_pairs": int(pairs["identical"].sum()) if len(pairs) else 0,
           "equal_values": int((pairs["diff"] == 0).sum()), "tied_blocks": int((d == 0).sum()),
           "diverged_in_pairs": int(pairs["diverged"].sum()),
           "mean_reference": float(pairs["reference"].mean()) if len(pairs) else math.nan,
           "mean_level": float(pairs["level"].mean()) if len(pairs) else math.nan,
           "diff": float(d.mean()) if n_blocks else math.nan,
           "median": float(np.median(d)) if n_blocks else math.nan,
           "hodges_lehmann": hodges_lehmann(d),
           "se": float(np.std(d, ddof=1) / math.sqrt(n_blocks)) if n_blocks > 1 else math.nan,
           "df": n_blocks - 1,
           "p_value": t_test_p(d)}
    row["ci_low"], row["ci_high"] = t_interval(d, confidence)
    if binary and n_blocks and len(pairs) and np.all(d == d[0]):
        row["ci_low"], row["ci_high"] = newcombe_interval(pairs, confidence)
    wins = float((d > 0).sum() + 0.5 * (d == 0).sum())
    row["p_improvement"] = wins / n_blocks if n_blocks else math.nan
    row["p_improvement_low"], row["p_improvement_high"] = wilson_interval(wins, n_blocks, confidence)
    row["seed_ci_low"], row["seed_ci_high"] = seed_noise_interval(blocks, confidence)
    row["pseudo_ci_low"], row["pseudo_ci_high"] = t_interval(pairs["diff"], confidence)
    row["detectable"] = detectable_difference(float(np.std(d, ddof=1)) if n_blocks > 1 else math.nan, n_blocks)
    if bounded:
        for name in ("ci", "seed_ci", "pseudo_ci"):
            row[f"{name}_low"], row[f"{name}_high"] = max(row[f"{name}_low"], -1.0), min(row[f"{name}_high"], 1.0)
    return row


def newcombe_interval(pairs: pd.DataFrame, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's hybrid score interval of level rate - reference rate over the pairs' 0/1 outcomes (the
    pairs counted as independent trials: it only stands in where the t interval is a point)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    n = len(pairs)
    low, high = confint_proportions_2indep(int(pairs["level"].sum()), n, int(pairs["reference"].sum()), n,
                                           method="newcomb", alpha=1 - confidence)
    return float(low), float(high)


def hodges_lehmann(d: np.ndarray) -> float:
    """The Hodges-Lehmann estimate of the centre: the median of all pairwise means (Walsh averages).
    Robust like the median, nearly as efficient as the mean; it shows when a few blocks drive a mean."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    i, j = np.triu_indices(d.size)
    return float(np.median((d[i] + d[j]) / 2))


def simultaneous_interval(row: dict | pd.Series, tests: int, alpha: float = ALPHA,
                          bounded: bool = True) -> tuple[float, float]:
    """The Bonferroni-adjusted interval (confidence 1 - alpha / tests) of one of `tests` comparisons: all
    of them cover their true effects together with probability at least 1 - alpha. It excludes zero only
    when the unadjusted p is below alpha / tests, so it never calls significant what Holm does not."""
    se, df, diff = row["se"], row["df"], row["diff"]
    if tests < 1 or not (math.isfinite(se) and math.isfinite(diff)) or df < 1:
        return math.nan, math.nan
    if se == 0.0:
        return diff, diff
    half = float(stats.t.ppf(1 - alpha / (2 * tests), df)) * se
    low, high = diff - half, diff + half
    return (max(low, -1.0), min(high, 1.0)) if bounded else (low, high)


def seed_noise_interval(blocks: pd.DataFrame, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The interval of the mean block difference with the blocks held fixed: only the seeds' scatter
    within each block counts (pooled within-block variance, df = sum of seeds - 1 per block)."""
    usable = blocks[blocks["n"] > 1]
    df = int((usable["n"] - 1).sum())
    if df < 1 or blocks.empty:
        return math.nan, math.nan
    pooled = float(((usable["n"] - 1) * usable["var"]).sum() / df)
    se = math.sqrt(float((pooled / blocks["n"]).sum())) / len(blocks)
    mean = float(blocks["diff"].mean())
    if se == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, df, loc=mean, scale=se)
    return float(low), float(high)


def block_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str, keep: str | None = None,
                  alpha: float = ALPHA, noop: bool = True) -> pd.DataFrame:
    """Every non-reference level of every factor vs its reference (the first level), by block.

    Holm correction over every comparison of the table; `verdict` (see `verdict`) is the one word a
    sentence about the effect may use. `noop=False` for outcomes where equal pairs are no sign of a
    level doing nothing (a 0/1 failure indicator is equal whenever both trials learned).
    """
    from statsmodels.stats.multitest import multipletests

    factors = [f for f, levels in factor_levels.items() if len(levels) > 1]
    rows = []
    for factor in factors:
        reference = factor_levels[factor][0]
        others = [level_column(f) for f in factors if f != factor]
        for level in factor_levels[factor][1:]:
            pairs, unpaired = paired_differences(frame, factor, level, reference, factors, metric, keep)
            rows.append({"factor": factor, "level": level, "reference": reference, "unpaired": unpaired,
                         **effect_row(pairs, others, bounded=bounded(frame, metric), binary=metric == BINARY)})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ADJUSTED])
    table["p_holm"] = math.nan
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"], alpha=alpha, method="holm")[1]
    adjusted = [simultaneous_interval(row, int(tested.sum()), alpha, bounded(frame, metric))
                for _, row in table.iterrows()]
    table["ci_low_adj"] = [low for low, _ in adjusted]
    table["ci_high_adj"] = [high for _, high in adjusted]
    table["significant"] = table["p_holm"] < alpha
    table["verdict"] = [verdict(row, noop) for _, row in table.iterrows()]
    return table[COLUMNS]


def verdict(row: pd.Series, noop: bool = True) -> str:
    """`no-op` when the level changed nothing in (nearly) every pair, `higher`/`lower` when the
    Holm-corrected test over blocks is significant (its interval then excludes zero), else
    `not significant`."""
    if row["pairs"] == 0:
        return "no pairs"
    if noop and row["equal_pairs"] == row["pairs"]:
        return "no-op"
    if noop and row["equal_pairs"] >= NOOP_SHARE * row["pairs"]:
        return "mostly no-op"
    if not row["significant"]:
        return "not significant"
    return "higher" if row["diff"] > 0 else "lower"


def t_test_p(diff: np.ndarray) -> float:
    """Two-sided one-sample t test of mean 0 over the units (blocks); it rejects exactly when the t interval
    excludes 0, so test and interval never disagree. (A signed-rank test over blocks cannot reach p < 0.05
    with 5 blocks or fewer.) 1.0 if every difference is 0; 0.0 if all are one nonzero value; nan below 2."""
    diff = np.asarray(diff, dtype=float)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        return math.nan
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def within(frame: pd.DataFrame, factor_levels: dict[str, list[str]], factor: str, level: str, reference: str,
           metric: str, where: dict[str, list[str]] | None = None, keep: str | None = None) -> dict:
    """One comparison inside a condition: only trials whose other factors take the levels in `where`
    (e.g. {"optimizer": ["sgd"]}); blocks are the combinations of the other factors that remain."""
    where = where or {}
    data = frame
    for name, allowed in where.items():
        data = data[data[level_column(name)].isin(allowed)]
    factors = [f for f, levels in factor_levels.items() if len(levels) > 1
               and (f == factor or len([lv for lv in levels if lv in where.get(f, levels)]) > 1)]
    pairs, unpaired = paired_differences(data, factor, level, reference, factors, metric, keep)
    others = [level_column(f) for f in factors if f != factor]
    return {"factor": factor, "level": level, "reference": reference, "unpaired": unpaired,
            **effect_row(pairs, others, bounded=bounded(frame, metric), binary=metric == BINARY)}


def bounded(frame: pd.DataFrame, metric: str) -> bool:
    """An accuracy or a rate whose values lie in [0, 1]: the differences of two lie in [-1, 1]."""
    return metric.endswith(BOUNDED) and in_unit_interval(frame[metric])
