"""Any MLflow experiment's runs, however they were made: the reading side of `study analyze`.

Unlike study.analysis.runs (a study's own trial runs, found by their tags), these are every run of a
named experiment, with whatever params, tags and metrics its own code logged.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from study.core.errors import InputError, StorageError
from study.core.store_lock import sqlite_file
from study.core.text import redact
from study.tracking.reading import MAX_RUNS, metric_histories
from study.tracking.store import configure, default_tracking_uri

NAMES_SHOWN = 12  # experiment names an error message lists


def open_store(tracking_uri: str | None) -> str:
    """Open an existing store for reading (a SQLite file that is not there is an error, not a new empty store)."""
    uri = tracking_uri or default_tracking_uri()
    path = sqlite_file(uri)
    if path is not None and not path.is_file():
        raise StorageError(f"--tracking-uri: {redact(uri)}: no such file (where are the runs? pass their store's URI)")
    return configure(uri)


def experiment_runs(name: str) -> pd.DataFrame:
    """Every run of the experiment `name` (mlflow.search_runs columns: run_id, status, start_time,
    params.*, tags.*, metrics.*), oldest first; InputError naming the experiments there if it does not exist."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in mlflow.search_experiments(max_results=1000))
        shown = ", ".join(names[:NAMES_SHOWN]) + (f" (+{len(names) - NAMES_SHOWN} more)"
                                                  if len(names) > NAMES_SHOWN else "")
        raise InputError(f"--experiment: no experiment named {name!r} in this tracking store; "
                         f"experiments there: {shown or 'none'}")
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id], max_results=MAX_RUNS)
    if runs.empty:
        return runs
    return runs.sort_values("start_time", kind="mergesort").reset_index(drop=True)


def metric_history(run_ids: list[str], metric: str) -> pd.DataFrame:
    """Long frame (run_id, metric, epoch, value) of `metric` per logged step; empty where only one value
    per run was logged (no history to draw)."""
    frame = metric_histories(run_ids, [metric])
    if frame.empty or frame.groupby("run_id")["epoch"].nunique().max() < 2:
        return frame.iloc[0:0]
    return frame
