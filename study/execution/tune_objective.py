"""One tuning trial: suggest the searched values, train them through the shared tracked path, return the metric.

Both sides link to each other, as in optuna-integration's MLflowCallback: the run id
is a user attr of the queue's trial, the Optuna study, trial number and state are tags on
the run (the trial ledger, study.queue.ledger, writes both).
"""

from __future__ import annotations

import math

from study.core.names import EPOCHS_ATTR, KEY_ATTR, NUMBER_TAG, OPTUNA_STUDY_TAG, STATUS_ATTR, TUNE_ROLE, WORKER_ATTR
from study.core.status import TrialStatus
from study.core.text import worker_id
from study.execution.sources import TrainingContext
from study.execution.tracked import Recording, run_tracked
from study.queue.ledger import TrialLedger
from study.queue.records import COMPLETED, FAILED, PRUNED, Lease
from study.spec.designs import Trial
from study.spec.tune_spec import TuneSpec
from study.training.executors.base import TrialHooks
from study.tuning.asked import AskedTrial


class TrialPruned(RuntimeError):
    """The pruner stopped the trial: the queue records it pruned (a result, its last reported value)."""


class TrialFailed(RuntimeError):
    """Training raised; the queue records the trial as failed and the study goes on."""


class TrialLost(RuntimeError):
    """The queue gave the trial to another worker while this one trained it (no heartbeat for too long)."""


class Objective:
    """Train the trial's config and return its metric.

    Pruned trials raise TrialPruned (queue: pruned; MLflow: `pruned`, FINISHED); a
    training error raises TrialFailed (failed / `failed`); a diverged trial without any
    finite epoch returns NaN (failed). A worker that lost its lease while training
    (the ledger's `still_ours` false at the end) raises TrialLost: the trial is someone else's now.
    """

    def __init__(self, spec: TuneSpec, ctx: TrainingContext, ledger: TrialLedger, lease: Lease) -> None:
        self.spec = spec
        self.ctx = ctx
        self.ledger = ledger
        self.lease = lease

    def __call__(self, trial: AskedTrial) -> float:
        spec, ctx, ledger = self.spec, self.ctx, self.ledger
        config = spec.config_for(trial.suggest(spec.space))
        trial.set_attr(KEY_ATTR, config.key())
        trial.set_attr(WORKER_ATTR, worker_id())
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
            ledger.link(self.lease, run_id)

        def status_of(result) -> str:  # noqa: ANN001 - TrialResult
            return TrialStatus.PRUNED if result.stopped_by_hook and result.status == TrialStatus.COMPLETED \
                else result.status

        recording = Recording(role=TUNE_ROLE, tags=[{OPTUNA_STUDY_TAG: spec.name, NUMBER_TAG: str(trial.number)}],
                              hooks=[TrialHooks(on_epoch_end=report, should_stop=prune)], status_of=status_of,
                              on_start=on_start, still_ours=lambda i: ledger.still_ours(self.lease))
        try:
            outcome, = run_tracked([Trial(config, {"optuna_trial": str(trial.number)})], spec.name, ctx.exp_id,
                                   ctx.splits, ctx.settings, ctx.executor(config.executor), recording,
                                   stop=ctx.stop.event)
        except KeyboardInterrupt:
            ledger.mirror(run_ids, FAILED)
            raise
        if outcome.status == TrialStatus.LOST:
            ledger.mirror(run_ids, FAILED)
            raise TrialLost(outcome.error)
        epochs_run = outcome.result.epochs_run if outcome.result is not None else 0
        trial.set_attr(STATUS_ATTR, str(outcome.status))
        trial.set_attr(EPOCHS_ATTR, epochs_run)
        if outcome.status == TrialStatus.PRUNED:
            ledger.mirror(run_ids, PRUNED)
            raise TrialPruned(f"pruned after {pruned_at[0] if pruned_at else '?'} of {config.epochs} epochs")
        if outcome.status == TrialStatus.FAILED:
            ledger.mirror(run_ids, FAILED)
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "training failed")
        final = outcome.result.final
        if "test_accuracy" in final:
            trial.set_attr("test_accuracy", final["test_accuracy"])
        value = final.get(f"final_{spec.metric}")
        if value is None or not math.isfinite(value):
            ledger.mirror(run_ids, FAILED)
            return float("nan")
        ledger.mirror(run_ids, COMPLETED)
        return float(value)
