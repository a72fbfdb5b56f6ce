"""One Optuna trial: suggest the searched values, train them through the shared tracked path, return the metric.

Both sides link to each other, as in optuna-integration's MLflowCallback: the run id
is an Optuna user attr, the Optuna study, trial number and state are tags on the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna

from study.core.names import (EPOCHS_ATTR, KEY_ATTR, NUMBER_TAG, OPTUNA_STUDY_TAG, RUN_ID_ATTR, STATE_TAG,
                              STATUS_ATTR, TUNE_ROLE, WORKER_ATTR)
from study.core.status import TrialStatus
from study.core.text import worker_id
from study.execution.sources import TrainingContext
from study.execution.tracked import Recording, run_tracked
from study.spec.designs import Trial
from study.spec.tune_spec import TuneSpec
from study.tracking.runs import tag_runs
from study.training.executors.base import TrialHooks
from study.tuning.optuna_setup import suggest


class TrialFailed(RuntimeError):
    """Training raised; Optuna records the trial as FAIL and the study goes on."""


class TrialLost(RuntimeError):
    """The queue gave the trial to another worker while this one trained it (no heartbeat for too long)."""


class Objective:
    """Train the trial's config and return its metric.

    Pruned trials raise TrialPruned (Optuna: PRUNED; MLflow: `pruned`, FINISHED); a
    training error raises TrialFailed (FAIL / `failed`); a diverged trial without any
    finite epoch returns NaN (FAIL). A worker that lost its claim while training
    (`still_ours` false at the end) raises TrialLost: the trial is someone else's now.
    """

    def __init__(self, spec: TuneSpec, ctx: TrainingContext, still_ours: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self.ctx = ctx
        self.still_ours = still_ours

    def __call__(self, trial: optuna.Trial) -> float:
        spec, ctx = self.spec, self.ctx
        config = spec.config_for(suggest(trial, spec.space))
        trial.set_user_attr(KEY_ATTR, config.key())
        trial.set_user_attr(WORKER_ATTR, worker_id())
        pruned_at: list[int] = []
        reported: set[int] = set()
        run_ids: list[str] = []

        def report(epoch: int, logs: dict[str, float]) -> None:
            value = logs.get(spec.metric)
            if value is not None and math.isfinite(value):  # a diverged epoch is the executor's business
                trial.report(float(value), epoch + 1)  # step = epochs completed
                reported.add(epoch)

        def prune(epoch: int, logs: dict[str, float]) -> bool:
            if epoch in reported and trial.should_prune():
                pruned_at.append(epoch + 1)
                return True
            return False

        def on_start(index: int, run_id: str) -> None:
            run_ids.append(run_id)
            trial.set_user_attr(RUN_ID_ATTR, run_id)

        def status_of(result) -> str:  # noqa: ANN001 - TrialResult
            return TrialStatus.PRUNED if result.stopped_by_hook and result.status == TrialStatus.COMPLETED \
                else result.status

        recording = Recording(role=TUNE_ROLE, tags=[{OPTUNA_STUDY_TAG: spec.name, NUMBER_TAG: str(trial.number)}],
                              hooks=[TrialHooks(on_epoch_end=report, should_stop=prune)], status_of=status_of,
                              on_start=on_start,
                              still_ours=(lambda i: self.still_ours()) if self.still_ours is not None else None)
        try:
            outcome, = run_tracked([Trial(config, {"optuna_trial": str(trial.number)})], spec.name, ctx.exp_id,
                                   ctx.splits, ctx.settings, ctx.executor(config.executor), recording,
                                   stop=ctx.stop.event)
        except KeyboardInterrupt:
            tag_state(run_ids, "FAIL")
            raise
        if outcome.status == TrialStatus.LOST:
            tag_state(run_ids, "FAIL")
            raise TrialLost(outcome.error)
        epochs_run = outcome.result.epochs_run if outcome.result is not None else 0
        trial.set_user_attr(STATUS_ATTR, str(outcome.status))
        trial.set_user_attr(EPOCHS_ATTR, epochs_run)
        if outcome.status == TrialStatus.PRUNED:
            tag_state(run_ids, "PRUNED")
            raise optuna.TrialPruned(f"pruned after {pruned_at[0] if pruned_at else '?'} of {config.epochs} epochs")
        if outcome.status == TrialStatus.FAILED:
            tag_state(run_ids, "FAIL")
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "training failed")
        final = outcome.result.final
        if "test_accuracy" in final:
            trial.set_user_attr("test_accuracy", final["test_accuracy"])
        value = final.get(f"final_{spec.metric}")
        if value is None or not math.isfinite(value):
            tag_state(run_ids, "FAIL")
            return float("nan")
        tag_state(run_ids, "COMPLETE")
        return float(value)


def tag_state(run_ids: list[str], state: str) -> None:
    """Mirror the Optuna state on the (already ended) MLflow run."""
    tag_runs(run_ids, STATE_TAG, state)
