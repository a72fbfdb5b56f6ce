"""Learning vs accuracy, separated: which trials did not learn, and each factor's effect on that.

A trial that never learned (its kept model predicts about one class) is a different outcome from
a trial that learned less; averaging the two lets a level that rescues failing configs look like a
level that raises everyone's accuracy. A trial *does not learn* when its final val accuracy is at
most the validation set's majority-class rate plus a margin (a model that predicts one class for
every image scores at most that rate), or when its loss was not finite (diverged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.analysis.stats.blocks import block_effects
from study.analysis.stats.intervals import level_column, wilson_interval

FAILURE_MARGIN = 0.05  # 5 pp above the majority-class rate; see FailureRule
FAILED = "failed"  # 1.0 if the trial did not learn, else 0.0 (a rate when averaged)
LEARNED = "learned"


@dataclass(frozen=True)
class FailureRule:
    """`final val accuracy <= majority_rate + margin`, or a non-finite val loss / diverged status."""

    majority_rate: float  # share of the validation set's most frequent class
    margin: float = FAILURE_MARGIN
    source: str = ""  # where majority_rate comes from (the labels, or 1 / classes when they were not at hand)

    @property
    def threshold(self) -> float:
        return self.majority_rate + self.margin


def mark_failures(frame: pd.DataFrame, rule: FailureRule, metric: str = "final_val_accuracy") -> pd.DataFrame:
    """The frame with `failed` (0/1 float) and `learned` (bool) per trial."""
    out = frame.copy()
    accuracy = out[metric].astype(float)
    recorded = "final_val_loss" in out and out["final_val_loss"].notna().any()  # runs of another code may log none
    loss = out["final_val_loss"].astype(float) if recorded else pd.Series(0.0, index=out.index)
    diverged = out["status"].eq("diverged") if "status" in out else pd.Series(False, index=out.index)
    failed = (accuracy <= rule.threshold) | ~np.isfinite(accuracy) | ~np.isfinite(loss) | diverged
    out[FAILED] = failed.astype(float)
    out[LEARNED] = ~failed
    return out


def failure_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """Each level's effect on the failure rate (level - reference, in share of trials), by block."""
    return block_effects(frame, factor_levels, FAILED, noop=False)


def learner_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str) -> pd.DataFrame:
    """Each level's effect on `metric` among trials that learned: only (block, seed) pairs where both
    trials learned count; blocks without such a pair drop out (the `blocks` column says how many are left).
    Conditioning on learning favours the reference's easiest blocks when a level rescues failures, so
    read it beside the failure-rate effect."""
    return block_effects(frame, factor_levels, metric, keep=LEARNED)


def failures_by_level(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """Per factor level: trials, how many did not learn, the rate and its Wilson interval."""
    rows = []
    for factor, levels in factor_levels.items():
        for level in levels:
            trials = frame[frame[level_column(factor)] == level]
            failed = int(trials[FAILED].sum())
            low, high = wilson_interval(failed, len(trials))
            rows.append({"factor": factor, "level": level, "trials": len(trials), "failed": failed,
                         "rate": failed / len(trials) if len(trials) else math.nan, "rate_low": low,
                         "rate_high": high})
    return pd.DataFrame(rows, columns=["factor", "level", "trials", "failed", "rate", "rate_low", "rate_high"])


def failing_configs(frame: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """Configs with at least one trial that did not learn: how many of their seeds failed."""
    columns = [level_column(f) for f in factors]
    if not columns:
        failed = int(frame[FAILED].sum())
        return pd.DataFrame([{"failed": failed, "seeds": len(frame)}]) if failed else pd.DataFrame()
    table = frame.groupby(columns, observed=True, sort=False).agg(failed=(FAILED, "sum"), seeds=(FAILED, "size"),
                                                                  val_accuracy=("final_val_accuracy", "mean"))
    table = table[table["failed"] > 0].reset_index().rename(columns=dict(zip(columns, factors)))
    table["failed"] = table["failed"].astype(int)
    return table.sort_values(["failed", "val_accuracy"], ascending=[False, True]).reset_index(drop=True)
