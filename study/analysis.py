"""MLflow runs -> tidy pandas DataFrames (one row per trial; curves on demand).

Config columns are typed back from MLflow's string params, so grouping and
sorting behave numerically.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

import mlflow
import pandas as pd

from study.config import FIELD_NAMES, TrialConfig, parse_param
from study.tracking import DONE_STATUSES, KEY_TAG, ROLE_TAG, STATUS_TAG

if TYPE_CHECKING:
    from study.spec import Level, StudySpec

CONFIG_COLUMNS = [n for n in FIELD_NAMES if n != "seed"]
RESULT_METRICS = ["final_val_accuracy", "final_val_loss", "test_accuracy", "test_loss", "best_val_accuracy",
                  "last_accuracy", "last_loss", "final_accuracy", "best_epoch", "epochs_run", "wall_time_s", "params"]


def trials_frame(study_name: str, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per trial run of the study's experiment (latest run per key if repeated)."""
    experiment = mlflow.get_experiment_by_name(study_name)
    if experiment is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                              filter_string=f"tags.{ROLE_TAG} = 'trial'", max_results=100_000)
    if runs.empty:
        return pd.DataFrame()
    frame = pd.DataFrame({
        "run_id": runs["run_id"],
        "trial_key": runs[f"tags.{KEY_TAG}"],
        "status": runs[f"tags.{STATUS_TAG}"],
        "mlflow_status": runs["status"],
        "start_time": runs["start_time"],
        "end_time": runs["end_time"],
    })
    for name in FIELD_NAMES:
        column = f"params.{name}"
        if column in runs:
            frame[name] = [parse_param(name, v) if isinstance(v, str) else None for v in runs[column]]
    for metric in RESULT_METRICS:
        column = f"metrics.{metric}"
        frame[metric] = runs[column] if column in runs else float("nan")
    level_columns = [c for c in runs.columns if c.startswith("tags.level.")]
    for column in level_columns:
        frame[f"level_{column.removeprefix('tags.level.')}"] = runs[column]
    if not include_unfinished:
        frame = frame[frame["status"].isin(DONE_STATUSES)]
    frame = frame.sort_values("start_time").drop_duplicates("trial_key", keep="last")
    return frame.reset_index(drop=True)


def varying_factors(frame: pd.DataFrame) -> list[str]:
    """Config columns that take more than one value in this study (its factors)."""
    return [c for c in CONFIG_COLUMNS if c in frame and frame[c].astype(str).nunique() > 1]


def epoch_curves(run_ids: Iterable[str], metrics: Iterable[str] = ("loss", "accuracy", "val_loss", "val_accuracy",
                                                                  "learning_rate")) -> pd.DataFrame:
    """Long frame (run_id, metric, epoch, value) of per-epoch metrics."""
    client = mlflow.MlflowClient()
    rows = []
    for run_id in run_ids:
        for metric in metrics:
            for m in client.get_metric_history(run_id, metric):
                rows.append((run_id, metric, m.step, m.value))
    return pd.DataFrame(rows, columns=["run_id", "metric", "epoch", "value"])


def config_leaderboard(frame: pd.DataFrame, metric: str = "final_val_accuracy") -> pd.DataFrame:
    """Mean and std over seeds per config, best first."""
    keys = [c for c in CONFIG_COLUMNS if c in frame]
    grouped = frame.assign(**{c: frame[c].astype(str) for c in keys}).groupby(keys, dropna=False)
    table = grouped.agg(
        n=("seed", "count"),
        val_acc_mean=("final_val_accuracy", "mean"),
        val_acc_std=("final_val_accuracy", "std"),
        test_acc_mean=("test_accuracy", "mean"),
        test_acc_std=("test_accuracy", "std"),
        diverged=("status", lambda s: int((s == "diverged").sum())),
    ).reset_index()
    return table.sort_values("val_acc_mean", ascending=False, na_position="last").reset_index(drop=True)


def main_effects(frame: pd.DataFrame, factor: str, reference: str | None = None) -> pd.DataFrame:
    """Per level of `factor`: mean, std, n of final val/test accuracy and the
    difference of the mean to the reference level (the first listed level)."""
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


# --------------------------------------------------------------------------- levels from configs

UNLISTED = "*"  # suffix of a level label for a value that is none of the spec's levels


def assign_levels(frame: pd.DataFrame, spec: "StudySpec") -> pd.DataFrame:
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


def config_levels(config: TrialConfig, spec: "StudySpec") -> tuple[dict[str, str], list[str]]:
    """The level of each factor that `config` has, and the factors where it has none
    (for which the reference level is taken)."""
    values = config.as_dict()
    chosen, unmatched = {}, []
    for factor, levels in spec.factors.items():
        match = next((lv for lv in levels if all(_same(values[f], v) for f, v in lv.values.items())), None)
        if match is None:
            unmatched.append(factor)
            match = levels[0]
        chosen[factor] = match.label
    return chosen, unmatched


def tidy_trials(frame: pd.DataFrame, spec: "StudySpec") -> pd.DataFrame:
    """The one tidy table of a study: identity, status, seed, levels, config, metrics."""
    if frame.empty:
        return frame
    out = assign_levels(frame.drop(columns=[c for c in frame if c.startswith("level_")]), spec)
    levels = [f"level_{f}" for f in spec.factors]
    first = ["run_id", "trial_key", "status", "seed", *levels]
    rest = [c for c in out.columns if c not in first]
    return out[[c for c in first if c in out] + rest]


def _matches(frame: pd.DataFrame, level: "Level") -> pd.Series:
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


def best_config(study_name: str) -> tuple[TrialConfig, pd.Series] | None:
    """The finished ablation study's best config by mean final val accuracy over seeds
    (seed reset to 0), with its leaderboard row; None if the study has no finished trials."""
    from study.config import from_params

    frame = trials_frame(study_name)
    if frame.empty:
        return None
    row = config_leaderboard(frame).iloc[0]
    # The leaderboard groups on str() of each column; an unset train_subset reads "nan" or "None" there.
    params = {c: "None" if str(row[c]) in ("nan", "None", "<NA>") else str(row[c]) for c in CONFIG_COLUMNS if c in row}
    return from_params(params), row
