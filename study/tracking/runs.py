"""The runs a study writes: a parent run per worker invocation, a child run per trial.

The trial key tag (`trial_key`) and status tag (`trial_status`) on each child run are
what resume rests on: a key with a FINISHED run tagged completed/diverged is done and
is never trained again. Child runs are written through the client with their run id
(not the fluent active-run stack), so an executor that trains a group of trials keeps
one open run per trial.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import mlflow
from mlflow.entities import DatasetInput, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from study.config import TrialConfig
from study.core.errors import StoreFault
from study.core.names import (CREATION_TAG, ERROR_TAG, KEY_TAG, LEVEL_TAG_PREFIX, PARENT_ROLE, ROLE_TAG,
                              STATUS_TAG, TRIAL_ROLE, TRIAL_ROLES, WORKER_ROLE, WORKER_TAG)
from study.core.status import DONE_STATUSES, TrialStatus, mlflow_run_status
from study.core.text import worker_id
from study.data.arrays import DatasetArrays
from study.data.splits import SplitCache, SplitInput
from study.tracking.datasets import dataset_inputs, study_dataset_inputs
from study.tracking.environment import machine, versions
from study.tracking.filters import FINISHED, RUNNING, run_filter
from study.tracking.store import tracking_guard

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
# Set by `study run --workers N` for the worker processes it starts: the run their own runs nest under.
PARENT_RUN_ENV = "STUDY_PARENT_RUN_ID"


@contextmanager
def parent_run(exp_id: str, study_name: str, spec_hash: str, command: str, extra_tags: dict[str, str],
               nest_under: str | None = None) -> Iterator[Any]:
    """The run that groups one invocation's trials; ends KILLED/FAILED if the invocation does.

    With `nest_under` (a local worker of `study run --workers N`), it is a `worker` run inside
    that invocation's run, so the invocation's run holds everything it started.
    """
    tags = {ROLE_TAG: PARENT_ROLE, "study": study_name, "spec_hash": spec_hash, "command": command,
            WORKER_TAG: worker_id(), **{f"version.{k}": v for k, v in versions().items()},
            **{f"machine.{k}": v for k, v in machine().items()}, **extra_tags}
    name = f"{study_name} ({worker_id()})"
    if nest_under:
        tags.update({ROLE_TAG: WORKER_ROLE, PARENT_RUN_TAG: nest_under})
        name = f"worker {worker_id()}"
    run = mlflow.start_run(run_id=create_run_once(exp_id, tags, name).info.run_id)
    try:
        yield run
    except BaseException as exc:
        with suppress(StoreFault):  # a store that failed may not record the end: the fault is what to report
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED if isinstance(exc, KeyboardInterrupt)
                                               else RunStatus.FAILED))
        raise
    else:
        mlflow.end_run()


class TrialRun:
    """One trial's MLflow child run, addressed by its id (several can be open at once)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.client = mlflow.MlflowClient()

    @classmethod
    def start(cls, exp_id: str, config: TrialConfig, levels: dict[str, str], study_name: str,
              role: str = TRIAL_ROLE, extra_tags: dict[str, str] | None = None) -> TrialRun:
        """A RUNNING run of the study's experiment (a child of the active parent run, if any), with every
        config field as a param."""
        parent = mlflow.active_run()
        label = " ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
        tags = {ROLE_TAG: role, KEY_TAG: config.key(), STATUS_TAG: TrialStatus.RUNNING.value, "study": study_name,
                "seed": str(config.seed), "backend": config.backend, WORKER_TAG: worker_id(),
                RUN_NAME_TAG: f"{label} seed={config.seed}",
                **{f"{LEVEL_TAG_PREFIX}{factor}": lv for factor, lv in levels.items()},
                **{f"version.{k}": v for k, v in versions().items()}, **(extra_tags or {})}
        if parent is not None:
            tags[PARENT_RUN_TAG] = parent.info.run_id
        client = mlflow.MlflowClient()
        run = create_run_once(exp_id, tags, tags[RUN_NAME_TAG])
        params = [Param(k, v) for k, v in config.mlflow_params().items()]  # user hyperparameters as hp.<name>
        client.log_batch(run.info.run_id, params=params)
        return cls(run.info.run_id)

    def log_data(self, data: DatasetArrays, inputs: list[SplitInput]) -> None:
        """The trial's splits as dataset inputs (the Dataset column of MLflow's runs table)."""
        log_inputs(self.client, self.run_id, dataset_inputs(data, inputs))

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        stamp = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), stamp, epoch) for k, v in metrics.items()])

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        tracking_guard().call(self.client.log_artifact, self.run_id, path, artifact_path)

    def log_json(self, obj: Any, artifact_file: str) -> None:
        text = json.dumps(obj, indent=2, sort_keys=True, default=str)
        tracking_guard().call(self.client.log_text, self.run_id, text, artifact_file)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, status: str, final: dict[str, float], wall_time_s: float, error: str = "") -> None:
        """Record the outcome; results (completed, diverged, pruned) end FINISHED, failures FAILED,
        interruptions KILLED. Only completed/diverged ablation trials count as done for resume."""
        stamp = _now_ms()
        metrics = [Metric(k, float(v), stamp, 0) for k, v in {**final, "wall_time_s": wall_time_s}.items()]
        tags = [RunTag(STATUS_TAG, str(status))] + ([RunTag(ERROR_TAG, error[-4000:])] if error else [])
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(self.run_id, status=mlflow_run_status(status))


def create_run_once(exp_id: str, tags: dict[str, str], name: str) -> Any:
    """A new RUNNING run, exactly one even when creating it was retried.

    Creating a run is not idempotent: a request the store carried out but whose answer was lost (a tracking
    server killed mid-request, a database connection dropped after its commit) is sent again, by MLflow's
    HTTP client or by our StoreGuard, and a second run appears that nobody owns and that stays RUNNING for
    ever. Each creation carries a fresh id (CREATION_TAG); its other runs are such twins, holding nothing but
    the tags, and are deleted (MLflow's soft delete: `mlflow gc` purges them).
    """
    client = mlflow.MlflowClient()
    creation = uuid.uuid4().hex
    run = client.create_run(exp_id, tags={**tags, CREATION_TAG: creation}, run_name=name)
    twins = mlflow.search_runs(experiment_ids=[exp_id], filter_string=run_filter({CREATION_TAG: creation}),
                               output_format="list")
    for twin in twins:
        if twin.info.run_id != run.info.run_id:
            client.delete_run(twin.info.run_id)
    return run


def log_inputs(client: mlflow.MlflowClient, run_id: str, datasets: list[DatasetInput]) -> None:
    """Dataset inputs of a run. MLflow looks a dataset up, then inserts it if missing: two workers
    logging the same new dataset at once (PostgreSQL, the first trials of a study) collide on its
    unique key. The loser tries once more, when the row exists and only the link to its run is written."""
    if not datasets:
        return
    Retrying(retry=retry_if_exception_type(MlflowException), stop=stop_after_attempt(2), wait=wait_fixed(0.5),
             reraise=True)(client.log_inputs, run_id, datasets=datasets)


def log_study_data(run_id: str, splits: SplitCache, configs: Iterable[TrialConfig]) -> None:
    """Every split the trials of `configs` use, on an invocation's (or worker's) run: the runs table's
    Dataset column then shows the study's data on its row too, not only on the trials' rows."""
    log_inputs(mlflow.MlflowClient(), run_id, study_dataset_inputs(splits, configs))


def active_run_id() -> str | None:
    """The id of this process's active (fluent) run: the invocation's or the worker's parent run, if open."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def end_active_run(status: str) -> None:
    """End this process's active run with MLflow status `status` (e.g. KILLED), if one is open."""
    if mlflow.active_run() is not None:
        mlflow.end_run(status)


def log_metrics(metrics: dict[str, float]) -> None:
    """Metrics of the active (parent) run."""
    mlflow.log_metrics({name: float(value) for name, value in metrics.items()})


def tag_runs(run_ids: Iterable[str], tag: str, value: str) -> None:
    """Set one tag on runs that may have ended already."""
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        client.set_tag(run_id, tag, value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_json(obj: Any, artifact_file: str) -> None:
    """An artifact of the active (parent) run."""
    tracking_guard().call(mlflow.log_text, json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


# --------------------------------------------------------------------------- reading back


def done_keys(exp_id: str) -> set[str]:
    """Keys of trials that already have a finished, recorded result."""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=run_filter({ROLE_TAG: TRIAL_ROLE}, FINISHED),
        output_format="list",
    )
    return {r.data.tags[KEY_TAG] for r in runs if r.data.tags.get(STATUS_TAG) in DONE_STATUSES}


def finished_trial_run(exp_id: str, key: str) -> Any | None:
    """The finished, recorded run of trial `key`, if any: a worker checks it before training
    a trial it took, so a result recorded by a worker that died before telling the queue
    is adopted, never trained a second time."""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=run_filter({KEY_TAG: key}, FINISHED),
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get(STATUS_TAG) in DONE_STATUSES]
    return min(runs, key=lambda r: r.info.start_time) if runs else None


# --------------------------------------------------------------------------- closing runs of dead workers


def reap_key_runs(exp_id: str, key: str, reason: str) -> int:
    """End the RUNNING runs of trial `key` as interrupted. Only called by the worker that
    holds `key` in the queue: any other run of it belongs to a worker that lost it."""
    return reap_runs(exp_id, {KEY_TAG: key}, reason)


def reap_runs(exp_id: str, tags: Mapping[str, str], reason: str) -> int:
    """End the RUNNING runs with these tag values as interrupted (their worker is gone)."""
    runs = mlflow.search_runs(experiment_ids=[exp_id], filter_string=run_filter(tags, RUNNING), output_format="list")
    client = mlflow.MlflowClient()
    for run in runs:
        client.set_tag(run.info.run_id, STATUS_TAG, TrialStatus.INTERRUPTED.value)
        client.set_tag(run.info.run_id, ERROR_TAG, reason)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return len(runs)


def reap_dead_local_runs(exp_id: str) -> int:
    """Mark runs left RUNNING by a dead process on this host as interrupted (e.g. SIGKILL)."""
    host = socket.gethostname()
    runs = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string=run_filter(status=RUNNING), output_format="list")
    client = mlflow.MlflowClient()
    reaped = 0
    for run in runs:
        owner = run.data.tags.get(WORKER_TAG, "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if run.data.tags.get(ROLE_TAG) in TRIAL_ROLES:
            client.set_tag(run.info.run_id, STATUS_TAG, TrialStatus.INTERRUPTED.value)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        reaped += 1
    return reaped


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
