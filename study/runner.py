"""Run a study: queue its trials (study.engine), train them with one or more workers
(study.worker), each trial tracked as an MLflow child run (run_tracked).

Resume: trials whose key already has a finished run are skipped; failed and
interrupted ones run again. Ctrl-C / SIGTERM mark the trial in progress as
interrupted, end its run KILLED and put it back in the queue, so the store never
holds a half-written result and the same command finishes the study.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from study.designs import Trial, expand
from study.spec import StudySpec

if TYPE_CHECKING:
    from study.engine import QueueSettings


@dataclass
class RunSummary:
    study: str
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)  # trials by status at the end (completed: by this run)
    wall_time_s: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(self.counts.get(k, 0) == 0 for k in ("failed", "interrupted", "pending"))


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so both stop a trial the same clean way."""


def spec_hash(spec: StudySpec) -> str:
    return hashlib.sha256(json.dumps(spec.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def unique_trials(spec: StudySpec) -> list[Trial]:
    """Expand the design; levels that produce the same config are trained once."""
    seen: set[str] = set()
    out = []
    for trial in expand(spec):
        if trial.key not in seen:
            seen.add(trial.key)
            out.append(trial)
    return out


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(i: int, n: int, trial: Trial, status: str, val_acc: float | None,
                  seconds: float, eta_s: float | None) -> str:
    levels = " ".join(f"{f}={lv}" for f, lv in trial.levels.items()) or "base"
    acc = f"val_acc {val_acc:.4f}" if val_acc is not None else "val_acc   n/a "
    eta = f"ETA {format_duration(eta_s)}" if eta_s is not None else ""
    return f"[{i}/{n}] {levels} seed={trial.config.seed} | {status:<9} {acc} | {seconds:5.1f}s | {eta}".rstrip()


def run_study(
    spec: StudySpec,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    backend: str | None = None,
    steps_per_execution: int | None = None,
    log: Callable[[str], None] = print,
    trial_figures: bool = False,
    *,
    workers: int = 1,
    storage: str | None = None,
    threads: int | None = None,
    queue_settings: "QueueSettings | None" = None,
) -> RunSummary:
    """Queue every pending trial of `spec`, train them with `workers` processes, return counts by status.

    One worker runs in this process; more are started as `python -m study worker`
    processes on the same queue, exactly what a worker on another machine runs.
    """
    from study import engine, tracking
    from study.worker import GridSource, WorkerOptions, run_worker, spawn_workers, threads_per_worker

    if backend:
        spec = with_backend(spec, backend)
    uri = tracking.configure(tracking_uri)
    url = storage or engine.default_storage_url(uri)
    queue = engine.TrialQueue.open(url, spec.name, queue_settings or engine.QueueSettings())
    exp_id = tracking.experiment_id(spec.name, uri)
    reaped = tracking.reap_dead_local_runs(exp_id)
    if reaped:
        log(f"marked {reaped} run(s) left RUNNING by a dead process on this host as interrupted")
    source = GridSource(spec)
    before = source.key_status(queue)
    missing = source.enqueue(queue, mlflow_done=tracking.done_keys(exp_id))
    trials = unique_trials(spec)
    done_before = {k for k, state in before.items() if state in ("completed", "diverged")}
    summary = RunSummary(study=spec.name, total=len(trials), skipped=len(done_before))
    pending = len(trials) - summary.skipped
    log(f"study {spec.name}: {len(trials)} trials, {summary.skipped} already done, {pending} to run "
        f"(backend {spec.base.backend}; queue {engine.redact(url)}, {missing} newly queued; MLflow {uri})")
    started = time.perf_counter()
    if pending:
        from study.backend import select_backend
        from study.data import load_mnist

        workers = max(1, min(workers, pending))
        threads = threads if threads is not None else threads_per_worker(workers)
        if workers == 1:  # this process trains: its backend first (the web route of load_mnist imports Keras)
            select_backend(spec.base.backend, threads=threads)
        mnist = load_mnist(data_dir)  # a bad --data-dir fails here (exit 2), not in N workers
        log(f"data: {mnist.source} (checksums verified)")
        options = WorkerOptions(data_dir=data_dir, steps_per_execution=steps_per_execution, threads=threads,
                                trial_figures=trial_figures,
                                tracking_uri=uri, log=log, mnist=mnist if workers == 1 else None)
        if workers == 1:
            result = run_worker(spec, queue, source, options)
            summary.interrupted = result.interrupted
        else:
            log(f"starting {workers} worker processes ({threads or 'default'} thread(s) each)")
            summary.interrupted = spawn_workers(spec, url, uri, workers, options, backend=backend, log=log)
    summary.wall_time_s = time.perf_counter() - started
    for key, state in source.key_status(queue).items():
        if key not in done_before:
            name = state if state in ("completed", "diverged", "failed", "interrupted") else "pending"
            summary.counts[name] = summary.counts.get(name, 0) + 1
    return summary


def run_one(trial: Trial, study_name: str, splits, settings) -> tuple[str, float | None, float]:
    """Train one trial inside its own child run. Returns (status, final val acc, seconds)."""
    outcome = run_tracked(trial, study_name, splits, settings)
    val_acc = outcome.result.final.get("final_val_accuracy") if outcome.result else None
    return outcome.status, val_acc, outcome.seconds


@dataclass
class TrialOutcome:
    """What run_tracked did: the recorded status, the result (None if training failed) and its run."""

    status: str
    result: object | None  # study.train.TrialResult (not imported here: it imports Keras)
    seconds: float
    run_id: str
    error: str = ""


LOST_CLAIM = ("the queue gave this trial to another worker (no heartbeat for longer than the grace period); "
              "this run is not the trial's result")


def run_tracked(
    trial: Trial,
    study_name: str,
    splits,
    settings,
    *,
    role: str = "trial",
    tags: dict[str, str] | None = None,
    extra_callbacks: tuple = (),
    status_of: Callable[[object], str] | None = None,
    on_start: Callable[[str], None] | None = None,
    still_ours: Callable[[], bool] | None = None,
) -> TrialOutcome:
    """Train one trial inside its own MLflow child run and record its outcome.

    The keyword hooks let other drivers (queue workers, Optuna tuning) reuse this one
    path: extra callbacks join the Keras fit, `status_of` may turn a result into e.g.
    `pruned`, `on_start` receives the run id as soon as the run exists, and
    `still_ours` is asked just before a result is recorded as FINISHED: a worker that
    lost its queue claim records `lost` (run KILLED) so a key never gets two finished
    runs. A training exception is recorded as `failed` and returned; Ctrl-C/SIGTERM is
    recorded as `interrupted` and re-raised.
    """
    from study import tracking
    from study.callbacks import MlflowEpochLogger
    from study.plots import learning_curve
    from study.train import EPOCH_METRICS, train_trial

    import mlflow

    started = time.perf_counter()
    run = tracking.start_trial_run(trial.config, trial.levels, study_name, role=role, extra_tags=tags)
    run_id = run.info.run_id
    try:
        if on_start is not None:
            on_start(run_id)
        with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
            result = train_trial(trial.config, splits.get(trial.config.validation, trial.config.train_subset),
                                 settings, extra_callbacks=[MlflowEpochLogger(EPOCH_METRICS), *extra_callbacks],
                                 workdir=Path(tmp))
            status = status_of(result) if status_of is not None else result.status
            if settings.trial_figures:
                title = (f"{study_name}: {' '.join(f'{k}={v}' for k, v in trial.levels.items())} "
                         f"seed={trial.config.seed}")
                mlflow.log_artifact(str(learning_curve(result.history, title, Path(tmp) / "learning_curve.png")))
            if result.model_path is not None:
                mlflow.log_artifact(str(result.model_path), artifact_path="model")
            tracking.log_json(result.history, "history.json")
            if still_ours is not None and not still_ours():
                tracking.finish_trial_run("interrupted", result.final, result.wall_time_s, error=LOST_CLAIM)
                return TrialOutcome("lost", result, time.perf_counter() - started, run_id, error=LOST_CLAIM)
            tracking.finish_trial_run(status, result.final, result.wall_time_s)
        return TrialOutcome(status, result, time.perf_counter() - started, run_id)
    except KeyboardInterrupt:
        tracking.finish_trial_run("interrupted", {}, time.perf_counter() - started, error="interrupted (Ctrl-C/SIGTERM)")
        raise
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the study goes on
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        tracking.finish_trial_run("failed", {}, time.perf_counter() - started, error=error)
        return TrialOutcome("failed", None, time.perf_counter() - started, run_id, error=error)


def with_backend(spec: StudySpec, backend: str) -> StudySpec:
    """The spec with its base backend overridden (--backend); trial keys follow."""
    from dataclasses import replace

    from study.spec import coerce_field

    coerce_field("--backend", "backend", "backend", backend)
    return replace(spec, base=spec.base.replace(backend=backend))
