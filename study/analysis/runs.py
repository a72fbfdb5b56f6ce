"""MLflow runs -> tidy pandas DataFrames (one row per trial; curves on demand).

Config columns are typed back from MLflow's string params by their factor
declarations, so grouping and sorting behave numerically.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from study.config import DEFAULTS, FIELD_NAMES, parse_param
from study.config.user_model import PARAM_PREFIX, parse_text
from study.core.names import KEY_TAG, ROLE_TAG, STATUS_TAG, TRIAL_ROLE
from study.core.status import DONE_STATUSES
from study.tracking.reading import InvocationRun, invocation_runs, metric_histories, study_runs

CONFIG_COLUMNS = [n for n in FIELD_NAMES if n not in ("seed", "hparams")]  # user hyperparameters: own columns
HYPERPARAMETERS = "hyperparameters"  # frame.attrs key: the columns of user hyperparameters
RESULT_METRICS = ["final_val_accuracy", "final_val_loss", "test_accuracy", "test_loss", "best_val_accuracy",
                  "last_accuracy", "last_loss", "final_accuracy", "best_epoch", "epochs_run", "wall_time_s", "params"]


def trials_frame(study_name: str, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per trial run of the study's experiment (latest run per key if repeated)."""
    runs = study_runs(study_name, {ROLE_TAG: TRIAL_ROLE})
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
        if name == "hparams":
            continue
        column = f"params.{name}"
        if column in runs:  # a run recorded before a field existed trained with its default
            frame[name] = [parse_param(name, v) if isinstance(v, str) else DEFAULTS[name] for v in runs[column]]
        else:
            frame[name] = [DEFAULTS[name]] * len(frame)
    own = sorted(c.removeprefix(f"params.{PARAM_PREFIX}") for c in runs.columns
                 if c.startswith(f"params.{PARAM_PREFIX}"))
    for name in own:  # a user hyperparameter `hp.<name>`: a column `<name>`, like a built-in field's
        frame[name] = [parse_text(v) if isinstance(v, str) else None for v in runs[f"params.{PARAM_PREFIX}{name}"]]
    for metric in RESULT_METRICS:
        column = f"metrics.{metric}"
        frame[metric] = runs[column] if column in runs else float("nan")
    level_columns = [c for c in runs.columns if c.startswith("tags.level.")]
    for column in level_columns:
        frame[f"level_{column.removeprefix('tags.level.')}"] = runs[column]
    if not include_unfinished:
        frame = frame[frame["status"].isin(DONE_STATUSES)]
    frame = frame.sort_values("start_time").drop_duplicates("trial_key", keep="last").reset_index(drop=True)
    frame.attrs[HYPERPARAMETERS] = own
    return frame


def hyperparameter_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of `frame` (from trials_frame) that hold user hyperparameters."""
    return [c for c in frame.attrs.get(HYPERPARAMETERS, []) if c in frame]


def epoch_curves(run_ids: Iterable[str], metrics: Iterable[str] = ("loss", "accuracy", "val_loss", "val_accuracy",
                                                                  "learning_rate")) -> pd.DataFrame:
    """Long frame (run_id, metric, epoch, value) of per-epoch metrics."""
    return metric_histories(run_ids, metrics)


def parent_runs(study_name: str) -> list[InvocationRun]:
    """The study's invocation runs, newest first."""
    return invocation_runs(study_name)
