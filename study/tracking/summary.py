"""What a study's invocation run shows a person in the MLflow UI: its totals and the study's report.

The invocation's run (role `study`) gets summary metrics (trials done, best val accuracy)
when its workers are done, and the report the invocation wrote as artifacts under `report/`
(README.md, figures/, tables/), so the experiment's runs table leads to the report.
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from study.core.names import KEY_TAG, PARENT_ROLE, ROLE_TAG, STATUS_TAG, TRIAL_ROLE
from study.core.status import DONE_STATUSES
from study.tracking.filters import FINISHED, run_filter

REPORT_ARTIFACTS = "report"
NOTE_TAG = "mlflow.note.content"  # a run's description in the MLflow UI
BEST_METRIC = "final_val_accuracy"


def study_totals(exp_id: str, keys: set[str]) -> dict[str, float]:
    """Study-wide, over every worker: trials in the spec, trials with a result, the best val accuracy."""
    runs = mlflow.search_runs(experiment_ids=[exp_id], output_format="list",
                              filter_string=run_filter({ROLE_TAG: TRIAL_ROLE}, FINISHED))
    done = [r for r in runs if r.data.tags.get(STATUS_TAG) in DONE_STATUSES and r.data.tags.get(KEY_TAG) in keys]
    totals = {"trials_total": float(len(keys)), "trials_done": float(len({r.data.tags[KEY_TAG] for r in done}))}
    accuracies = [r.data.metrics[BEST_METRIC] for r in done
                  if BEST_METRIC in r.data.metrics and math.isfinite(r.data.metrics[BEST_METRIC])]
    if accuracies:
        totals["best_val_accuracy"] = max(accuracies)
    return totals


def log_totals(run_id: str, totals: dict[str, float]) -> None:
    """Summary metrics of a (possibly already ended) run."""
    stamp = mlflow.utils.time.get_current_time_millis()
    mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in totals.items()])


def latest_invocation_run(exp_id: str) -> str | None:
    """The study's newest top-level run (for a report written by an invocation that trained nothing)."""
    runs = mlflow.search_runs(experiment_ids=[exp_id], filter_string=run_filter({ROLE_TAG: PARENT_ROLE}),
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    return runs[0].info.run_id if runs else None


def attach_report(run_id: str, readme: Path) -> None:
    """The report folder (README.md and its figures and tables) as artifacts of `run_id`, under report/,
    and the run's description (the first thing its page shows) pointing there."""
    client = mlflow.MlflowClient()
    client.log_artifacts(run_id, str(readme.parent), REPORT_ARTIFACTS)
    client.set_tag(run_id, NOTE_TAG, f"The study's report: **Artifacts > {REPORT_ARTIFACTS}/README.md** "
                                     f"(with its figures and tables; written to `{readme}` too).")
