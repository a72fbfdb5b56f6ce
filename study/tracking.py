"""MLflow: one experiment per study, a parent run per invocation, a child run per trial.

The trial key tag (`trial_key`) and status tag (`trial_status`) on each child run
are what resume rests on: a key with a FINISHED run tagged completed/diverged is
done and is never trained again.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.entities import RunStatus

from study.config import TrialConfig

DEFAULT_STORE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
DONE_STATUSES = ("completed", "diverged")
# A pruned tuning trial is a result (the pruner stopped it on purpose), so its run ends FINISHED.
RESULT_STATUSES = DONE_STATUSES + ("pruned",)
ROLE_TAG, KEY_TAG, STATUS_TAG, WORKER_TAG = "study_role", "trial_key", "trial_status", "worker"
# Child-run roles: an ablation trial (resumed by key) and an Optuna tuning trial (resumed by Optuna).
TRIAL_ROLES = ("trial", "tune_trial")


def default_tracking_uri(project_dir: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else a SQLite file in the project directory."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(project_dir or Path.cwd()).resolve() / DEFAULT_STORE}"


def configure(tracking_uri: str | None) -> str:
    # With a tracking server MLflow prints a URL per ended run; our progress lines say enough.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def artifact_location_for(tracking_uri: str) -> str | None:
    """Local stores keep artifacts in ./mlartifacts; a tracking server decides itself."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return (Path.cwd() / DEFAULT_ARTIFACTS).resolve().as_uri()


def experiment_id(study_name: str, tracking_uri: str, create: bool = True) -> str | None:
    experiment = mlflow.get_experiment_by_name(study_name)
    if experiment is not None:
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
        return experiment.experiment_id
    if not create:
        return None
    try:
        exp_id = mlflow.create_experiment(study_name, artifact_location=artifact_location_for(tracking_uri))
    except mlflow.exceptions.MlflowException:
        # Another worker created it between our lookup and create.
        experiment = mlflow.get_experiment_by_name(study_name)
        if experiment is None:
            raise
        exp_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)  # child runs (fluent, nested) land here too
    return exp_id


def versions() -> dict[str, str]:
    """Versions of everything that can change a result, recorded on every run."""
    out = {"python": platform.python_version()}
    for package in ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "mlflow", "optuna"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
            "cores": str(os.cpu_count())}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def done_keys(exp_id: str) -> set[str]:
    """Keys of trials that already have a finished, recorded result."""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=f"tags.{ROLE_TAG} = 'trial' AND attributes.status = 'FINISHED'",
        output_format="list",
    )
    return {r.data.tags[KEY_TAG] for r in runs if r.data.tags.get(STATUS_TAG) in DONE_STATUSES}


def finished_trial_run(exp_id: str, key: str) -> Any | None:
    """The finished, recorded run of trial `key`, if any: a worker checks it before training
    a trial it took, so a result recorded by a worker that died before telling the queue
    is adopted, never trained a second time."""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=f"tags.{KEY_TAG} = '{key}' AND attributes.status = 'FINISHED'",
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get(STATUS_TAG) in DONE_STATUSES]
    return min(runs, key=lambda r: r.info.start_time) if runs else None


def reap_key_runs(exp_id: str, key: str, reason: str) -> int:
    """End the RUNNING runs of trial `key` as interrupted. Only called by the worker that
    holds `key` in the queue: any other run of it belongs to a worker that lost it."""
    return reap_runs(exp_id, f"tags.{KEY_TAG} = '{key}'", reason)


def reap_runs(exp_id: str, filter_string: str, reason: str) -> int:
    """End the RUNNING runs that match `filter_string` as interrupted (their worker is gone)."""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=f"{filter_string} AND attributes.status = 'RUNNING'",
        output_format="list",
    )
    client = mlflow.MlflowClient()
    for run in runs:
        client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
        client.set_tag(run.info.run_id, "error", reason)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return len(runs)


def reap_dead_local_runs(exp_id: str) -> int:
    """Mark runs left RUNNING by a dead process on this host as interrupted (e.g. SIGKILL)."""
    host = socket.gethostname()
    runs = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string="attributes.status = 'RUNNING'", output_format="list")
    client = mlflow.MlflowClient()
    reaped = 0
    for run in runs:
        owner = run.data.tags.get(WORKER_TAG, "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if run.data.tags.get(ROLE_TAG) in TRIAL_ROLES:
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
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


@contextmanager
def parent_run(exp_id: str, study_name: str, spec_hash: str, command: str, extra_tags: dict[str, str]) -> Iterator[Any]:
    """The run that groups one invocation's trials; ends KILLED/FAILED if the invocation does."""
    tags = {ROLE_TAG: "study", "study": study_name, "spec_hash": spec_hash, "command": command,
            WORKER_TAG: worker_id(), **{f"version.{k}": v for k, v in versions().items()},
            **{f"machine.{k}": v for k, v in machine().items()}, **extra_tags}
    run = mlflow.start_run(experiment_id=exp_id, run_name=f"{study_name} ({worker_id()})", tags=tags)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run()


def start_trial_run(config: TrialConfig, levels: dict[str, str], study_name: str, role: str = "trial",
                    extra_tags: dict[str, str] | None = None) -> Any:
    tags = {ROLE_TAG: role, KEY_TAG: config.key(), STATUS_TAG: "running", "study": study_name,
            "seed": str(config.seed), "backend": config.backend, WORKER_TAG: worker_id(),
            **{f"level.{factor}": label for factor, label in levels.items()},
            **{f"version.{k}": v for k, v in versions().items()}, **(extra_tags or {})}
    label = " ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
    run = mlflow.start_run(run_name=f"{label} seed={config.seed}", nested=True, tags=tags)
    mlflow.log_params(config.as_dict())
    return run


def log_epoch(metrics: dict[str, float], epoch: int) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=epoch)


def finish_trial_run(status: str, final: dict[str, float], wall_time_s: float, error: str = "") -> None:
    """Record the outcome; results (completed, diverged, pruned) end FINISHED, failures FAILED,
    interruptions KILLED. Only completed/diverged ablation trials count as done for resume."""
    mlflow.log_metrics({**{k: float(v) for k, v in final.items()}, "wall_time_s": wall_time_s})
    mlflow.set_tag(STATUS_TAG, status)
    if error:
        mlflow.set_tag("error", error[-4000:])
    mlflow_status = "FINISHED" if status in RESULT_STATUSES else "KILLED" if status == "interrupted" else "FAILED"
    mlflow.end_run(mlflow_status)


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def command_line() -> str:
    program = "python -m study" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return " ".join([program, *sys.argv[1:]])
