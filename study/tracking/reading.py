"""A study's runs read back as plain pandas frames and dataclasses: what the analysis layer and the
reports see of MLflow (study.analysis.runs builds its tidy frames from these)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from study.core.names import PARENT_ROLE, ROLE_TAG
from study.tracking.filters import run_filter

MAX_RUNS = 100_000  # more runs than any study has: a search returns them all
CURVE_COLUMNS = ["run_id", "metric", "epoch", "value"]


@dataclass(frozen=True)
class InvocationRun:
    """One invocation's (parent) run: who ran what (its tags), newest first where listed."""

    run_id: str
    start_time: int  # ms since the epoch
    tags: dict[str, str]


def find_experiment(name: str) -> str | None:
    """The id of the experiment `name`, None if the store has none of that name (nothing is created)."""
    experiment = mlflow.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else None


def study_runs(study_name: str, tags: Mapping[str, str]) -> pd.DataFrame:
    """The study's runs with these tag values, as mlflow.search_runs' frame (run_id, status, start_time,
    end_time, params.*, tags.*, metrics.*); empty if the study has no experiment or no such run."""
    exp_id = find_experiment(study_name)
    if exp_id is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=[exp_id], filter_string=run_filter(tags), max_results=MAX_RUNS)


def invocation_runs(study_name: str) -> list[InvocationRun]:
    """The study's invocation runs (one per `study run|tune`), newest first."""
    exp_id = find_experiment(study_name)
    if exp_id is None:
        return []
    runs = mlflow.search_runs(experiment_ids=[exp_id], filter_string=run_filter({ROLE_TAG: PARENT_ROLE}),
                              order_by=["attributes.start_time DESC"], max_results=10_000, output_format="list")
    return [InvocationRun(r.info.run_id, r.info.start_time, dict(r.data.tags)) for r in runs]


def metric_histories(run_ids: Iterable[str], metrics: Iterable[str]) -> pd.DataFrame:
    """Long frame (run_id, metric, epoch, value): every logged step of each metric of each run."""
    client = mlflow.MlflowClient()
    metrics = list(metrics)
    rows = [(run_id, metric, m.step, m.value) for run_id in run_ids for metric in metrics
            for m in client.get_metric_history(run_id, metric)]
    # typed even when empty: an empty frame of object columns concatenated to the curves turns `value` into objects
    return pd.DataFrame(rows, columns=CURVE_COLUMNS).astype({"epoch": "int64", "value": "float64"})


def metric_names(run_id: str) -> list[str]:
    """The names of the metrics a run logged (their last values' keys)."""
    return list(mlflow.MlflowClient().get_run(run_id).data.metrics)


def run_json(run_id: str, artifact_file: str) -> Any | None:
    """A JSON artifact of a run (e.g. the spec.json an invocation logged), None if it cannot be read."""
    try:
        return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact_file}"))
    except (OSError, ValueError, MlflowException):
        return None
