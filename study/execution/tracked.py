"""Train a group of trials with an executor and record each as its own MLflow child run.

One path for every driver (grid workers, Optuna tuning, retraining): the keyword hooks
let them add per-epoch listeners (Optuna's pruner), turn a result into another status
(`pruned`), learn each run id as soon as it exists, and check just before recording a
result FINISHED that the worker still holds the trial: a worker that lost its lease
records `lost` (run KILLED), so a key never gets two finished runs (study.queue.ledger). A training
exception fails every trial of the group (recorded `failed`, returned); Ctrl-C/SIGTERM
records them `interrupted` and is re-raised.
"""

from __future__ import annotations

import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from study.core.errors import StoreFault
from study.core.status import TrialStatus
from study.data.splits import SplitCache
from study.queue.ledger import LOST_LEASE
from study.spec.designs import Trial
from study.tracking.runs import TrialRun
from study.training.executors.base import Batch, ExecutionSettings, Executor, TrialHooks
from study.training.results import TrialResult



@dataclass
class TrialOutcome:
    """What happened to one trial: the recorded status, its result (None if training failed), its run."""

    status: str
    result: TrialResult | None
    seconds: float
    run_id: str
    error: str = ""

    @property
    def val_accuracy(self) -> float | None:
        return self.result.final.get("final_val_accuracy") if self.result is not None else None


@dataclass
class Recording:
    """How a driver wants its trials recorded (all optional)."""

    role: str = "trial"
    tags: Sequence[dict[str, str]] | None = None  # per trial
    hooks: Sequence[TrialHooks] | None = None  # per trial, called after the run's own logging
    status_of: Callable[[TrialResult], str] | None = None
    on_start: Callable[[int, str], None] | None = None  # (index in group, run id)
    still_ours: Callable[[int], bool] | None = None  # (index in group)


def run_tracked(trials: Sequence[Trial], study_name: str, exp_id: str, splits: SplitCache,
                settings: ExecutionSettings, executor: Executor, recording: Recording = Recording(),
                stop: threading.Event | None = None) -> list[TrialOutcome]:
    """Train `trials` in one executor call, each inside its own MLflow child run; return their outcomes."""
    started = time.perf_counter()
    runs: list[TrialRun] = []
    finished: set[int] = set()  # runs already ended: an error after them must not end them again
    try:
        for index, trial in enumerate(trials):
            tags = recording.tags[index] if recording.tags else None
            runs.append(TrialRun.start(exp_id, trial.config, trial.levels, study_name, recording.role, tags))
            config = trial.config
            runs[-1].log_data(splits.dataset(config.dataset),
                              splits.inputs(config.dataset, config.validation, config.train_subset))
            if recording.on_start is not None:
                recording.on_start(index, runs[-1].run_id)
        hooks = [_logging_hooks(run, recording.hooks[i] if recording.hooks else None) for i, run in enumerate(runs)]
        with tempfile.TemporaryDirectory(prefix="trials-") as tmp:
            batch = Batch(configs=[t.config for t in trials],
                          splits=[splits.get(t.config.dataset, t.config.validation, t.config.train_subset)
                                  for t in trials],
                          hooks=hooks, workdir=Path(tmp), stop=stop or threading.Event())
            results = executor.run(batch, settings)
            outcomes = []
            for index, (trial, run, result) in enumerate(zip(trials, runs, results)):
                status = recording.status_of(result) if recording.status_of is not None else result.status
                if settings.trial_figures:
                    from study.tracking.trial_figure import learning_curve  # matplotlib only when asked

                    title = f"{study_name}: {_label(trial)} seed={trial.config.seed}"
                    run.log_artifact(str(learning_curve(result.history, title, Path(tmp) / f"curve-{index}" / "learning_curve.png")))
                if result.model_path is not None:
                    run.log_artifact(str(result.model_path), artifact_path="model")
                run.log_json(result.history, "history.json")
                if recording.still_ours is not None and not recording.still_ours(index):
                    finished.add(index)
                    run.finish(TrialStatus.INTERRUPTED, result.final, result.wall_time_s, error=LOST_LEASE)
                    outcomes.append(TrialOutcome(TrialStatus.LOST, result, result.wall_time_s, run.run_id,
                                                 error=LOST_LEASE))
                    continue
                finished.add(index)
                run.finish(status, result.final, result.wall_time_s)
                outcomes.append(TrialOutcome(status, result, result.wall_time_s, run.run_id))
        return outcomes
    except KeyboardInterrupt:
        for run in _open(runs, finished):
            run.finish(TrialStatus.INTERRUPTED, {}, time.perf_counter() - started,
                       error="interrupted (Ctrl-C/SIGTERM)")
        raise
    except StoreFault as fault:  # not the trials' failure: the worker stops, the trials are trained again
        for run in _open(runs, finished):
            with suppress(StoreFault):  # one try each (the process no longer retries)
                run.finish(TrialStatus.INTERRUPTED, {}, time.perf_counter() - started, error=str(fault))
        raise
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the study goes on
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        seconds = time.perf_counter() - started
        for run in _open(runs, finished):
            run.finish(TrialStatus.FAILED, {}, seconds, error=error)
        return [TrialOutcome(TrialStatus.FAILED, None, seconds, run.run_id, error=error) for run in runs]


def pruned_or_own(result: TrialResult) -> str:
    """A trial a hook stopped early (a pruner) is `pruned`; otherwise its own status."""
    return TrialStatus.PRUNED.value if result.stopped_by_hook and result.status == TrialStatus.COMPLETED \
        else result.status


def _open(runs: list[TrialRun], finished: set[int]) -> list[TrialRun]:
    return [run for index, run in enumerate(runs) if index not in finished]


def _logging_hooks(run: TrialRun, extra: TrialHooks | None) -> TrialHooks:
    """Each epoch's metrics go to the trial's run as they happen (the MLflow UI charts them live)."""
    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        run.log_epoch(logs, epoch)
        if extra is not None:
            extra.on_epoch_end(epoch, logs)

    return TrialHooks(on_epoch_end=on_epoch_end, should_stop=extra.should_stop if extra else TrialHooks().should_stop)


def _label(trial: Trial) -> str:
    return " ".join(f"{k}={v}" for k, v in trial.levels.items()) or "base"
