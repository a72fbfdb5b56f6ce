"""A trial the sampler proposed, as the tuning objective uses it: the Optuna trial stays in study/tuning/.

`ask(queue)` leases a trial of a tuning study (a re-queued or enqueued one first, else a new
proposal; study.queue.trial_queue.TrialQueue.ask); `AskedTrial` suggests its values, reports
each epoch to the pruner and asks whether to stop.
"""

from __future__ import annotations

from typing import Any

import optuna

from study.queue.records import Lease
from study.queue.trial_queue import TrialQueue
from study.spec.tune_spec import Param
from study.tuning.optuna_setup import suggest


class AskedTrial:
    """One leased tuning trial: its number, its suggested config values, its pruner."""

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial
        self.number = trial.number

    def suggest(self, space: dict[str, Param]) -> dict[str, Any]:
        """The trial's value of every searched field (the same values on a re-queued copy)."""
        return suggest(self._trial, space)

    def set_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)

    def report(self, value: float, step: int) -> None:
        self._trial.report(value, step)

    def should_prune(self) -> bool:
        return self._trial.should_prune()


def ask(queue: TrialQueue) -> tuple[Lease, AskedTrial]:
    lease, trial = queue.ask()
    return lease, AskedTrial(trial)
