"""Per-config summaries over seeds: the one leaderboard every part of the framework ranks by."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.stats.divergence import ACCURACY_METRICS
from study.analysis.stats.evaluation import binomial_sd, with_evaluation_noise
from study.analysis.stats.intervals import in_unit_interval, level_column, t_interval

VALIDATION_METRICS = ("final_val_accuracy", "best_val_accuracy")  # measured on the validation images


def config_summary(frame: pd.DataFrame, factors: list[str], metrics: tuple[str, ...],
                   columns: list[str] | None = None, validation_size: int = 0) -> pd.DataFrame:
    """Per config (combination of factor levels, or of the given `columns`): n, mean, std and 95% t
    interval over seeds (for accuracies clipped to [0, 1]), best first by the first metric.

    With `validation_size` (images in the validation split), a validation accuracy's `_ci_low/_ci_high`
    also carry the split's sampling error (study.analysis.stats.evaluation); `_seed_ci_low/_seed_ci_high`
    keep the interval over seeds alone and `_eval_sd` the binomial SD."""
    keys = columns if columns is not None else [level_column(f) for f in factors]
    unit = {m: m in ACCURACY_METRICS and in_unit_interval(frame[m]) for m in metrics}
    rows = []
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(columns if columns is not None else factors, key))
        row["n"] = int(len(group))
        row["diverged"] = int(group["status"].eq("diverged").sum()) if "status" in group else 0
        if "failed" in group:  # trials that did not learn (study.analysis.stats.failures)
            row["failed"] = int(group["failed"].sum())
        for metric in metrics:
            values = group[metric].astype(float)
            low, high = t_interval(values)
            if unit[metric]:  # an accuracy's mean lies in [0, 1], so does its interval
                low, high = max(low, 0.0), min(high, 1.0)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.count() > 1 else math.nan
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
            if metric in VALIDATION_METRICS and validation_size > 0:
                row[f"{metric}_seed_ci_low"], row[f"{metric}_seed_ci_high"] = low, high
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = with_evaluation_noise(values, validation_size)
                row[f"{metric}_eval_sd"] = binomial_sd(float(values.mean()), validation_size)
        rows.append(row)
    table = pd.DataFrame(rows)
    if metrics and not table.empty:
        # ties (e.g. a no-op level: bit-identical configs) in a fixed order, whatever order the trials came in
        names = columns if columns is not None else factors
        table = table.iloc[sorted(range(len(table)), key=lambda i: tuple(str(table.iloc[i][n]) for n in names))]
        table = table.sort_values(f"{metrics[0]}_mean", ascending=False, na_position="last", kind="mergesort")
    return table.reset_index(drop=True)
