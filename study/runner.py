"""Run a study's trials in this long-lived process, each tracked as an MLflow child run.

Resume: trials whose key already has a finished run are skipped; failed and
interrupted ones run again. Ctrl-C / SIGTERM mark the trial in progress as
interrupted and end its run KILLED, so the store never holds a half-written result.
"""

from __future__ import annotations

import hashlib
import json
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from study.designs import Trial, expand
from study.spec import StudySpec


@dataclass
class RunSummary:
    study: str
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("interrupted", 0) == 0


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
) -> RunSummary:
    """Train every pending trial of `spec`; return counts by status."""
    from study import tracking
    from study.backend import select_backend

    if backend:
        spec = with_backend(spec, backend)
    select_backend(spec.base.backend)
    uri = tracking.configure(tracking_uri)
    exp_id = tracking.experiment_id(spec.name, uri)
    reaped = tracking.reap_dead_local_runs(exp_id)
    if reaped:
        log(f"marked {reaped} run(s) left RUNNING by a dead process as interrupted")
    trials = unique_trials(spec)
    done = tracking.done_keys(exp_id)
    pending = [t for t in trials if t.key not in done]
    summary = RunSummary(study=spec.name, total=len(trials), skipped=len(trials) - len(pending))
    log(f"study {spec.name}: {len(trials)} trials, {summary.skipped} already done, {len(pending)} to run "
        f"(backend {spec.base.backend}, MLflow {uri})")
    if not pending:
        return summary

    from study.data import SplitCache, load_mnist
    from study.train import ExecutionSettings

    mnist = load_mnist(data_dir)
    log(f"data: {mnist.source} (checksums verified)")
    splits = SplitCache(mnist)
    settings = ExecutionSettings(steps_per_execution=steps_per_execution or spec.steps_per_execution)
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        with tracking.parent_run(exp_id, spec.name, spec_hash(spec), tracking.command_line(),
                                 {"data_source": mnist.source, "spec_file": spec.source}) as parent:
            tracking.log_json(spec.raw, "spec.json")
            for i, trial in enumerate(pending, start=1):
                status, val_acc, seconds = run_one(trial, spec.name, splits, settings)
                summary.counts[status] = summary.counts.get(status, 0) + 1
                elapsed = time.perf_counter() - started
                eta = elapsed / i * (len(pending) - i)
                log(progress_line(i, len(pending), trial, status, val_acc, seconds, eta))
            mlflow_set_counts(parent, summary)
    finally:
        signal.signal(signal.SIGTERM, previous)
        summary.wall_time_s = time.perf_counter() - started
    return summary


def mlflow_set_counts(parent, summary: RunSummary) -> None:
    import mlflow

    mlflow.log_metrics({f"trials_{k}": float(v) for k, v in summary.counts.items()})
    mlflow.log_metric("trials_skipped", float(summary.skipped))


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
) -> TrialOutcome:
    """Train one trial inside its own MLflow child run and record its outcome.

    The keyword hooks let other drivers (Optuna tuning) reuse this one path: extra
    callbacks join the Keras fit, `status_of` may turn a result into e.g. `pruned`,
    `on_start` receives the run id as soon as the run exists. A training exception is
    recorded as `failed` and returned; Ctrl-C is recorded as `interrupted` and re-raised.
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
            title = f"{study_name}: {' '.join(f'{k}={v}' for k, v in trial.levels.items())} seed={trial.config.seed}"
            mlflow.log_artifact(str(learning_curve(result.history, title, Path(tmp) / "learning_curve.png")))
            if result.model_path is not None:
                mlflow.log_artifact(str(result.model_path), artifact_path="model")
            tracking.log_json(result.history, "history.json")
            tracking.finish_trial_run(status, result.final, result.wall_time_s)
        return TrialOutcome(status, result, time.perf_counter() - started, run_id)
    except KeyboardInterrupt:
        tracking.finish_trial_run("interrupted", {}, time.perf_counter() - started, error="interrupted (Ctrl-C/SIGTERM)")
        raise
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the study goes on
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        tracking.finish_trial_run("failed", {}, time.perf_counter() - started, error=error)
        return TrialOutcome("failed", None, time.perf_counter() - started, run_id, error=error)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted()


def with_backend(spec: StudySpec, backend: str) -> StudySpec:
    """The spec with its base backend overridden (--backend); trial keys follow."""
    from dataclasses import replace

    from study.spec import coerce_field

    coerce_field("--backend", "backend", "backend", backend)
    return replace(spec, base=spec.base.replace(backend=backend))
