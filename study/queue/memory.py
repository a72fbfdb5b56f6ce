"""The trial queue in one process's memory, on an injectable clock: the same rules as the RDB backend.

Leasing, duplicates and retrains are the code both backends share (study.queue.leasing,
study.queue.ledger); what this module adds is what Optuna's storage does underneath, done
the same way: an atomic take (under a lock), heartbeats, stale trials failed after the grace
period and re-queued with Optuna's `RetryHeartbeatStaleTrialCallback` bookkeeping (`failed_trial`,
`retry_history`, at most `max_retry` times in a row), interrupted trials re-queued with their
identity (`requeued_from`), a finished trial that cannot be changed.

On a `ManualClock` (study.queue.clock) a test moves time past a grace period at once; nothing
here sleeps. One process only: workers in other processes or machines need TrialQueue.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from study.core.names import IDENTITY_ATTRS
from study.core.status import TrialStatus
from study.queue.clock import Clock, SystemClock
from study.queue.leasing import LeasingQueue
from study.queue.records import (FAILED, RUNNING, WAITING, Lease, QueuedTrial, QueueSettings, WorkerRecord,
                                 earlier_attempts)


@dataclass
class _Attempt:
    number: int
    state: TrialStatus
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    beat: float | None = None  # the last heartbeat, on the queue's clock
    started: float | None = None
    finished: float | None = None

    def record(self) -> QueuedTrial:
        retry_of, requeued_from, repeats = earlier_attempts(self.system_attrs)
        return QueuedTrial(number=self.number, state=self.state, user_attrs=dict(self.user_attrs), value=self.value,
                           params=dict(self.params), datetime_start=_datetime(self.started),
                           datetime_complete=_datetime(self.finished), retry_of=retry_of,
                           requeued_from=requeued_from, repeats=repeats, fixed="fixed_params" in self.system_attrs)


def _datetime(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds) if seconds is not None else None


class MemoryQueue(LeasingQueue):
    """A study's queue held by this process (study.queue.protocol.Queue); safe between its threads."""

    def __init__(self, name: str, settings: QueueSettings = QueueSettings(), clock: Clock | None = None) -> None:
        self.name = name
        self.url = f"memory:{name}"
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.objective: str | None = None
        self._attempts: list[_Attempt] = []
        self._workers: dict[str, WorkerRecord] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ reading

    def trials(self, states: Collection[TrialStatus] | None = None) -> list[QueuedTrial]:
        with self._lock:
            return [a.record() for a in self._attempts if states is None or a.state in states]

    def trial(self, number: int) -> QueuedTrial:
        with self._lock:
            return self._attempt(number).record()

    def holds(self, lease: Lease) -> bool:
        with self._lock:
            return self._attempt(lease.number).state == RUNNING

    # ------------------------------------------------------------------ writing

    def take(self, trial: QueuedTrial) -> Lease | None:
        with self._lock:
            attempt = self._attempt(trial.number)
            if attempt.state != WAITING:
                return None
            attempt.state, attempt.beat = RUNNING, self.clock.now()
            attempt.started = attempt.beat
            return Lease(attempt.number, attempt.number, dict(attempt.user_attrs))

    def add(self, user_attrs: dict[str, Any]) -> None:
        self._add(dict(user_attrs), {"fixed_params": {}})  # as Optuna's enqueue_trial records it

    def heartbeat(self, lease: Lease) -> None:
        with self._lock:
            self._attempt(lease.number).beat = self.clock.now()

    def set_attrs(self, lease: Lease, attrs: Mapping[str, Any]) -> None:
        with self._lock:
            attempt = self._updatable(lease.number)
            attempt.user_attrs.update(attrs)

    def tell(self, lease: Lease, state: TrialStatus, value: float | None, attrs: Mapping[str, Any]) -> bool:
        with self._lock:
            attempt = self._attempt(lease.number)
            if attempt.state != RUNNING:
                return False  # failed as stale meanwhile: the trial is someone else's now
            if state not in (TrialStatus.COMPLETED, TrialStatus.PRUNED, FAILED):
                raise ValueError(f"cannot tell trial {lease.number} {state}")
            attempt.user_attrs.update(attrs)
            attempt.state, attempt.value, attempt.finished = state, value, self.clock.now()
            return True

    def requeue(self, trial: QueuedTrial) -> None:
        with self._lock:
            attempt = self._attempt(trial.number)
            self._add({k: v for k, v in attempt.user_attrs.items() if k in IDENTITY_ATTRS},
                      {**attempt.system_attrs, "requeued_from": attempt.number}, attempt.params)

    def fail_stale(self) -> None:
        """Fail the running trials whose last beat is older than the grace period; re-queue each as Optuna's
        retry callback does: `failed_trial` the first attempt, `retry_history` every one, at most max_retry."""
        with self._lock:
            now = self.clock.now()
            stale = [a for a in self._attempts if a.state == RUNNING and a.beat is not None
                     and now - a.beat > self.settings.grace_period_s]
            for attempt in stale:
                attempt.state, attempt.finished = FAILED, now
            for attempt in stale:
                system = {"failed_trial": attempt.number, "retry_history": [], **attempt.system_attrs}
                system["retry_history"] = [*system["retry_history"], attempt.number]
                if self.settings.max_retry < len(system["retry_history"]):
                    continue
                self._add(dict(attempt.user_attrs), system, attempt.params)

    def name_objective(self, name: str) -> None:
        self.objective = name

    # ------------------------------------------------------------------ workers

    def record_worker(self, record: WorkerRecord) -> None:
        with self._lock:
            self._workers[record.worker] = record

    def workers(self) -> list[WorkerRecord]:
        with self._lock:
            return [self._workers[w] for w in sorted(self._workers)]

    def close(self) -> None:
        pass  # nothing is held per thread

    # ------------------------------------------------------------------ internals

    def _add(self, user_attrs: dict[str, Any], system_attrs: dict[str, Any], params: dict[str, Any] | None = None
             ) -> None:
        with self._lock:
            self._attempts.append(_Attempt(len(self._attempts), WAITING, user_attrs, system_attrs, dict(params or {})))

    def _attempt(self, number: int) -> _Attempt:
        try:
            return self._attempts[number]
        except IndexError:
            raise KeyError(f"no trial {number} in queue {self.name}") from None

    def _updatable(self, number: int) -> _Attempt:
        """A trial that is not finished (Optuna refuses to change a finished one, and so does this queue)."""
        attempt = self._attempt(number)
        if attempt.state not in (WAITING, RUNNING):
            raise RuntimeError(f"trial {number} of queue {self.name} is already finished ({attempt.state})")
        return attempt
