"""Factor levels of each trial, read off its config: the columns every analysis groups by."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from study.config import TrialConfig
from study.spec.designs import Level
from study.spec.study_spec import StudySpec

UNLISTED = "*"  # suffix of a level label for a value that is none of the spec's levels


def assign_levels(frame: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """`level_<factor>` for every factor of the spec, read off each trial's config values.

    The labels come from the config rather than the run tags, so the base trial of a
    one-at-a-time design (tagged with no levels) gets the levels it really has, and
    analysis does not depend on how a run was launched. A value that is none of the
    factor's levels is labelled with the value and a trailing `*`.
    """
    out = frame.copy()
    for factor, levels in spec.factors.items():
        labels = pd.Series(pd.NA, index=out.index, dtype="object")
        for level in levels:
            labels = labels.mask(labels.isna() & _matches(out, level), level.label)
        unlisted = labels.isna()
        if unlisted.any() and factor in out:
            labels[unlisted] = out.loc[unlisted, factor].map(unlisted_label)
        out[f"level_{factor}"] = labels.astype(str)
    return out


def config_levels(config: TrialConfig, spec: StudySpec) -> tuple[dict[str, str], list[str]]:
    """The level of each factor that `config` has, and the factors where it has none
    (for which the reference level is taken)."""
    values = config.values()  # fields and the spec's own hyperparameters by name
    chosen, unmatched = {}, []
    for factor, levels in spec.factors.items():
        match = next((lv for lv in levels if all(_same(values[f], v) for f, v in lv.values.items())), None)
        if match is None:
            unmatched.append(factor)
            match = levels[0]
        chosen[factor] = match.label
    return chosen, unmatched


def tidy_trials(frame: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The one tidy table of a study: identity, status, seed, levels, config, metrics."""
    if frame.empty:
        return frame
    frame = typed_hyperparameters(frame, spec)
    out = assign_levels(frame.drop(columns=[c for c in frame if c.startswith("level_")]), spec)
    levels = [f"level_{f}" for f in spec.factors]
    first = ["run_id", "trial_key", "status", "seed", *levels]
    rest = [c for c in out.columns if c not in first]
    return out[[c for c in first if c in out] + rest]


def typed_hyperparameters(frame: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The spec's own hyperparameters typed by their declarations (MLflow keeps text), with their default
    where a run lacks one."""
    if not spec.hyperparameters:
        return frame
    out = frame.copy()
    for name, declared in spec.hyperparameters.items():
        column = out[name] if name in out else pd.Series([None] * len(out), index=out.index, dtype="object")
        out[name] = [declared.default if v is None or (isinstance(v, float) and math.isnan(v))
                     else declared.factor.parse(str(v)) for v in column]
    return out


def _matches(frame: pd.DataFrame, level: Level) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for name, value in level.values.items():
        if name not in frame:
            return pd.Series(False, index=frame.index)
        mask &= frame[name].map(lambda v, want=value: _same(v, want)).astype(bool)
    return mask


def _same(value: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.isclose(float(value), want, rel_tol=1e-9, abs_tol=1e-12)
    return value == want


def unlisted_label(value: Any) -> str:
    """The label of a factor value that is none of the spec's levels (see assign_levels)."""
    return f"{str(value).lower() if isinstance(value, bool) else value}{UNLISTED}"




def level_summary(frame: pd.DataFrame, factor: str, reference: str | None = None) -> pd.DataFrame:
    """Per level of `factor`, every other factor and seed pooled: mean, std, n of final val/test
    accuracy and the difference of the mean to the reference level (descriptive, not paired)."""
    level_col = f"level_{factor}" if f"level_{factor}" in frame else factor
    values = frame.assign(level=frame[level_col].astype(str))
    table = values.groupby("level", sort=False).agg(
        n=("final_val_accuracy", "count"),
        val_acc_mean=("final_val_accuracy", "mean"),
        val_acc_std=("final_val_accuracy", "std"),
        test_acc_mean=("test_accuracy", "mean"),
        test_acc_std=("test_accuracy", "std"),
    )
    reference = reference if reference in table.index else table.index[0]
    table["val_acc_diff_vs_ref"] = table["val_acc_mean"] - table.loc[reference, "val_acc_mean"]
    table["test_acc_diff_vs_ref"] = table["test_acc_mean"] - table.loc[reference, "test_acc_mean"]
    table.insert(0, "reference", table.index == reference)
    return table.reset_index().rename(columns={"level": factor})
