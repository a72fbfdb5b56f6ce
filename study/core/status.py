"""One status vocabulary for trials, used by the queue, MLflow records, reports and progress lines."""

from __future__ import annotations

import enum

try:  # Python 3.11+
    from enum import StrEnum
except ImportError:  # pragma: no cover - Python 3.10
    class StrEnum(str, enum.Enum):  # type: ignore[no-redef]
        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


class TrialStatus(StrEnum):
    """How a trial (or one attempt at it) ended; the value is what the records store.

    completed/diverged are results that count as done for resume; pruned is a tuning
    result; failed, interrupted and lost attempts are tried again; duplicate and
    surplus attempts were dropped before training. Where an attempt stands in the queue
    is one of waiting, running, completed, pruned or failed (study.queue.records).
    """

    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LOST = "lost"
    DUPLICATE = "duplicate"
    SURPLUS = "surplus"
    RECOVERED = "recovered"


# Results that make an ablation trial's key done: resume never trains it again. Only a tuning trial of
# `tune_each_arm` with `sampler: tpe` is ever pruned (a grid trial has no pruner).
DONE_STATUSES: tuple[str, ...] = (TrialStatus.COMPLETED.value, TrialStatus.DIVERGED.value, TrialStatus.PRUNED.value)
# Results whose MLflow run ends FINISHED (a pruned tuning trial was stopped on purpose).
RESULT_STATUSES: tuple[str, ...] = DONE_STATUSES
# FAIL attempts of a tuning study that are not results: re-queued, dropped or lost to another worker.
NOT_RESULTS: tuple[str, ...] = tuple(s.value for s in (TrialStatus.INTERRUPTED, TrialStatus.LOST,
                                                         TrialStatus.DUPLICATE, TrialStatus.SURPLUS))


def mlflow_run_status(status: str) -> str:
    """The MLflow run status a trial status ends its run with."""
    if status in RESULT_STATUSES:
        return "FINISHED"
    return "KILLED" if status == TrialStatus.INTERRUPTED else "FAILED"
