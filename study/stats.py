"""Statistics of a study, as pure functions on tidy trial DataFrames.

Input: one row per trial with a `level_<factor>` column per factor (level labels
as strings), a `seed` column, a `status` column and metric columns. Nothing here
touches MLflow or Keras, so every function is tested on synthetic data with
planted effects.

Choices (stated again in every report):
- Per-config interval over seeds: Student t (3 seeds are too few for a bootstrap).
- Main effect of a level: mean of paired differences to the reference level, one
  pair per combination of the other factors' levels and seed; 95% t interval on
  those differences; two-sided Wilcoxon signed-rank test (Pratt's treatment of
  zero differences); Holm correction over every level-vs-reference comparison of
  the metric; P(level > reference) = share of pairs where the level wins, ties
  counting half (the probability of improvement of Bouthillier et al., 2021).
- Interactions and importance: ANOVA (statsmodels OLS, type II sums of squares)
  with all main effects and two-way interactions; share of variance = SS / total SS.
- Ablation path (Fawcett & Hoos, 2016) read off the trials: greedy, one flip at a
  time from the source config to the target config, best mean first.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
# A trial that diverged before any finite epoch has no kept model: it predicts
# garbage, so for accuracy it counts as chance (1 in 10 classes), never as missing.
CHANCE_ACCURACY = 0.10
ACCURACY_METRICS = ("final_val_accuracy", "test_accuracy", "best_val_accuracy", "final_accuracy")


def level_column(factor: str) -> str:
    return f"level_{factor}"


# --------------------------------------------------------------------------- intervals


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


# --------------------------------------------------------------------------- divergence


def impute_diverged(frame: pd.DataFrame, metrics: tuple[str, ...] = ACCURACY_METRICS) -> pd.DataFrame:
    """Diverged trials without a finite accuracy get chance accuracy, flagged in `imputed`.

    A diverged trial that had finite epochs keeps the metrics of its kept (best
    val_loss) checkpoint, which is a real model. Losses are never imputed: a
    missing loss stays missing and is counted where it is dropped.
    """
    out = frame.copy()
    diverged = out["status"].eq("diverged") if "status" in out else pd.Series(False, index=out.index)
    imputed = pd.Series(False, index=out.index)
    for metric in metrics:
        if metric not in out:
            continue
        missing = diverged & out[metric].isna()
        out.loc[missing, metric] = CHANCE_ACCURACY
        imputed |= missing
    out["imputed"] = imputed
    return out


# --------------------------------------------------------------------------- per config


def config_summary(frame: pd.DataFrame, factors: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    """Per config (combination of factor levels): n, mean, std and 95% t interval over seeds
    (for accuracies clipped to [0, 1])."""
    keys = [level_column(f) for f in factors]
    rows = []
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(factors, key))
        row["n"] = int(len(group))
        row["diverged"] = int(group["status"].eq("diverged").sum()) if "status" in group else 0
        for metric in metrics:
            values = group[metric].astype(float)
            low, high = t_interval(values)
            if metric in ACCURACY_METRICS:  # an accuracy's mean lies in [0, 1], so does its interval
                low, high = max(low, 0.0), min(high, 1.0)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.count() > 1 else math.nan
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
        rows.append(row)
    table = pd.DataFrame(rows)
    if metrics:
        table = table.sort_values(f"{metrics[0]}_mean", ascending=False, na_position="last")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- main effects


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


# --------------------------------------------------------------------------- ANOVA


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


# --------------------------------------------------------------------------- ablation path


def ablation_path(frame: pd.DataFrame, factors: list[str], source: dict[str, str], metric: str,
                  target: dict[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """Greedy ablation path (Fawcett & Hoos 2016) from `source` to `target` (default: best config).

    Each step flips one factor still at its source level to its target level,
    taking the flip whose config has the best mean `metric` over seeds. Every row
    carries that config's mean and t interval over seeds and the step's gain over
    the previous config, paired by seed, with its t interval. Returns the path
    and a note (empty, or why the path stops early).
    """
    keys = [level_column(f) for f in factors]
    data = frame[frame[metric].notna()]
    by_config = {key if isinstance(key, tuple) else (key,): group.set_index("seed")[metric]
                 for key, group in data.groupby(keys, sort=False)}
    means = {key: float(values.mean()) for key, values in by_config.items()}
    if not means:
        return pd.DataFrame(), "no finished trials"
    if target is None:
        best = max(means, key=means.get)
        target = dict(zip(factors, best))
    current = tuple(source[f] for f in factors)
    if current not in by_config:
        return pd.DataFrame(), "the source config was not run: " + _describe(dict(zip(factors, current)))
    rows = [_path_row(0, None, None, None, current, by_config, None, factors)]
    note = ""
    remaining = [f for f in factors if source[f] != target[f]]
    while remaining:
        options = []
        for factor in remaining:
            index = factors.index(factor)
            candidate = current[:index] + (target[factor],) + current[index + 1:]
            if candidate in by_config:
                options.append((means[candidate], factor, candidate))
        if not options:
            note = "the path stops: no config one flip further was run (" + ", ".join(
                f"{f}={target[f]}" for f in remaining) + " still to flip)"
            break
        _, factor, candidate = max(options, key=lambda option: option[0])
        rows.append(_path_row(len(rows), factor, current[factors.index(factor)], target[factor], candidate,
                              by_config, current, factors))
        current = candidate
        remaining.remove(factor)
    return pd.DataFrame(rows), note


def _path_row(step: int, factor: str | None, old: str | None, new: str | None, config: tuple,
              by_config: dict[tuple, pd.Series], previous: tuple | None, factors: list[str]) -> dict:
    values = by_config[config]
    low, high = t_interval(values)
    row = {"step": step, "flip": f"{factor}: {old} -> {new}" if factor else "start",
           "factor": factor or "", "config": _describe(dict(zip(factors, config))),
           "n": int(values.count()), "mean": float(values.mean()), "ci_low": low, "ci_high": high,
           "gain": math.nan, "gain_ci_low": math.nan, "gain_ci_high": math.nan, "gain_pairs": 0}
    if previous is not None:
        paired = pd.concat([values.rename("now"), by_config[previous].rename("before")], axis=1).dropna()
        gain = (paired["now"] - paired["before"]).to_numpy()
        row["gain"] = float(gain.mean()) if gain.size else math.nan
        row["gain_ci_low"], row["gain_ci_high"] = t_interval(gain)
        row["gain_pairs"] = int(gain.size)
    return row


def _describe(levels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in levels.items())


# --------------------------------------------------------------------------- learning curves


def seed_bands(curves: pd.DataFrame, frame: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame:
    """Per level and epoch: mean over seeds of the seed's mean curve, and its min and max.

    Within a seed, the curves of every trial at the level (all other factors) are
    averaged first, so the band shows seed-to-seed variation, not config spread.
    """
    column = level_column(factor)
    data = curves[curves["metric"] == metric].merge(frame[["run_id", "seed", column]], on="run_id")
    per_seed = data.groupby([column, "seed", "epoch"], observed=True)["value"].mean().reset_index()
    bands = per_seed.groupby([column, "epoch"], observed=True)["value"].agg(["mean", "min", "max", "count"])
    return bands.reset_index().rename(columns={column: "level", "count": "seeds"})
