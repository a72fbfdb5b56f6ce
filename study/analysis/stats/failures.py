"""Learning vs accuracy, separated: which trials fail, which partly learn, which learn, and each
factor's effect on that.

A trial that never learned (its kept model predicts about one class) is a different outcome from
a trial that learned less; averaging the two lets a level that rescues failing configs look like a
level that raises everyone's accuracy. Three classes:
- **fails**: final val accuracy at most the validation set's majority-class rate plus a margin (a
  model that predicts one class for every image scores at most that rate), or a non-finite loss;
- **learns**: it closes at least `learn_share` (default 80%) of the gap between the majority-class
  rate and the best config's mean, i.e. it reached the accuracy this budget allows;
- **partly learns**: in between (a 40% trial on MNIST is neither a failure nor a learner, and
  counting it among learners lets a handful of such trials drive the "among learners" means).
Why a share of the best config's gain and not a fixed accuracy: it is the same rule for a 97% MNIST
MLP and a 60% CIFAR net, and the report shows how the headline effects move with it (0.8 / 0.9 / 0.95).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from study.analysis.stats.blocks import block_effects
from study.analysis.stats.intervals import level_column, wilson_interval

FAILURE_MARGIN = 0.05  # 5 pp above the majority-class rate; see FailureRule
LEARN_SHARE = 0.80  # a learner closes 80% of the gap from the majority-class rate to the best config
SENSITIVITY_SHARES = (0.0, 0.8, 0.9, 0.95)  # 0.0: the partial class merged into the learners (the old rule)
FAILED = "failed"  # 1.0 if the trial fails, else 0.0 (a rate when averaged)
PARTIAL = "partial"  # 1.0 if the trial partly learns
LEARNED = "learned"  # True if the trial learns (not a failure, not partial)
OUTCOME = "outcome"  # "fails" | "partly learns" | "learns"
CLASSES = ("fails", "partly learns", "learns")


@dataclass(frozen=True)
class FailureRule:
    """Fails: `final val accuracy <= majority_rate + margin`, or a non-finite val loss / diverged status.
    Learns: `final val accuracy >= learn_threshold`. Partly learns: in between."""

    majority_rate: float  # share of the validation set's most frequent class
    margin: float = FAILURE_MARGIN
    source: str = ""  # where majority_rate comes from (the labels, or 1 / classes when they were not at hand)
    validation_size: int = 0  # images in the validation split (0: not known); its sampling error, see evaluation
    learn_share: float = LEARN_SHARE
    best: float = math.nan  # the best config's mean val accuracy over the main seeds (set by the analysis)

    @property
    def threshold(self) -> float:
        return self.majority_rate + self.margin

    @property
    def learn_threshold(self) -> float:
        """Where `learns` starts; never below the failure threshold (then there is no partial class)."""
        if not (math.isfinite(self.best) and math.isfinite(self.majority_rate)):
            return self.threshold
        return max(self.threshold, self.majority_rate + self.learn_share * (self.best - self.majority_rate))

    def with_best(self, best: float, learn_share: float | None = None) -> FailureRule:
        return replace(self, best=best, learn_share=self.learn_share if learn_share is None else learn_share)


def mark_failures(frame: pd.DataFrame, rule: FailureRule, metric: str = "final_val_accuracy") -> pd.DataFrame:
    """The frame with `outcome` (one of CLASSES), `failed` and `partial` (0/1 floats) and `learned` (bool)."""
    out = frame.copy()
    accuracy = out[metric].astype(float)
    recorded = "final_val_loss" in out and out["final_val_loss"].notna().any()  # runs of another code may log none
    loss = out["final_val_loss"].astype(float) if recorded else pd.Series(0.0, index=out.index)
    diverged = out["status"].eq("diverged") if "status" in out else pd.Series(False, index=out.index)
    failed = (accuracy <= rule.threshold) | ~np.isfinite(accuracy) | ~np.isfinite(loss) | diverged
    learned = ~failed & (accuracy >= rule.learn_threshold)
    partial = ~failed & ~learned
    out[OUTCOME] = np.select([failed, partial], CLASSES[:2], CLASSES[2])
    out[FAILED] = failed.astype(float)
    out[PARTIAL] = partial.astype(float)
    out[LEARNED] = learned
    return out


def best_config_mean(frame: pd.DataFrame, factors: list[str], metric: str = "final_val_accuracy") -> float:
    """The highest mean over seeds of any config (combination of the factors' levels)."""
    columns = [level_column(f) for f in factors]
    values = frame[metric].astype(float)
    if not columns:
        return float(values.mean()) if values.notna().any() else math.nan
    means = frame.assign(_v=values).groupby(columns, observed=True)["_v"].mean()
    return float(means.max()) if means.notna().any() else math.nan


def failure_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """Each level's effect on the failure rate (level - reference, in share of trials), by block."""
    return block_effects(frame, factor_levels, FAILED, noop=False)


def learner_effects(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str) -> pd.DataFrame:
    """Each level's effect on `metric` among trials that learn: only (block, seed) pairs where both
    trials learned count; blocks without such a pair drop out (the `blocks` column says how many are left).
    Conditioning on learning favours the reference's easiest blocks when a level rescues failures, so
    read it beside the failure-rate effect."""
    return block_effects(frame, factor_levels, metric, keep=LEARNED)


def learner_sensitivity(frame: pd.DataFrame, factor_levels: dict[str, list[str]], rule: FailureRule,
                        metric: str = "final_val_accuracy",
                        shares: tuple[float, ...] = SENSITIVITY_SHARES) -> pd.DataFrame:
    """The effects among learners under each learner threshold (share of the best config's gain; 0.0 keeps
    every trial that does not fail): how much the headline 'among learners' numbers lean on the rule."""
    tables = []
    for share in shares:
        marked = mark_failures(frame, rule.with_best(rule.best, share), metric)
        table = learner_effects(marked, factor_levels, metric)
        table.insert(0, "learn_share", share)
        table.insert(1, "learn_threshold", rule.with_best(rule.best, share).learn_threshold)
        table.insert(2, "learners", int(marked[LEARNED].sum()))
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def failures_by_level(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """Per factor level: trials, how many did not learn, the rate and its Wilson interval."""
    rows = []
    for factor, levels in factor_levels.items():
        for level in levels:
            trials = frame[frame[level_column(factor)] == level]
            failed = int(trials[FAILED].sum())
            low, high = wilson_interval(failed, len(trials))
            partial = int(trials[PARTIAL].sum()) if PARTIAL in trials else 0
            rows.append({"factor": factor, "level": level, "trials": len(trials), "failed": failed,
                         "rate": failed / len(trials) if len(trials) else math.nan, "rate_low": low,
                         "rate_high": high, "partial": partial})
    return pd.DataFrame(rows, columns=["factor", "level", "trials", "failed", "rate", "rate_low", "rate_high",
                                       "partial"])


def failing_configs(frame: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """Configs with at least one trial that failed or only partly learned: how many of their seeds did."""
    columns = [level_column(f) for f in factors]
    frame = frame if PARTIAL in frame else frame.assign(**{PARTIAL: 0.0})
    if not columns:
        failed, partial = int(frame[FAILED].sum()), int(frame[PARTIAL].sum())
        return (pd.DataFrame([{"failed": failed, "partial": partial, "seeds": len(frame)}]) if failed + partial
                else pd.DataFrame())
    table = frame.groupby(columns, observed=True, sort=False).agg(failed=(FAILED, "sum"), partial=(PARTIAL, "sum"),
                                                                  seeds=(FAILED, "size"),
                                                                  val_accuracy=("final_val_accuracy", "mean"))
    table = table[table["failed"] + table["partial"] > 0].reset_index().rename(columns=dict(zip(columns, factors)))
    table["failed"] = table["failed"].astype(int)
    table["partial"] = table["partial"].astype(int)
    return table.sort_values(["failed", "val_accuracy"], ascending=[False, True]).reset_index(drop=True)
