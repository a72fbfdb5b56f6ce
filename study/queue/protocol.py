"""The queue seam: what the workers, the status and the reports need from a trial queue.

Two backends implement it with the same rules (study.queue.leasing holds what they share):
study.queue.trial_queue.TrialQueue on Optuna's RDB storage (SQLite, PostgreSQL; what every
command uses, shared by processes and machines) and study.queue.memory.MemoryQueue in one
process with an injectable clock (the grace and heartbeat tests move time instead of sleeping).
tests/queue/test_contract.py runs the same contract on both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

from study.core.status import TrialStatus
from study.queue.records import Lease, QueueItem, QueuedTrial, QueueSettings, WorkerRecord


class Queue(Protocol):
    """Trials waiting for workers, leased exactly once, kept alive by heartbeats.

    - Each trial key is enqueued once while an attempt at it waits, runs or completed;
      `again` forces a copy of a completed key (its result was lost elsewhere), which
      records the attempt it replaces (`retrains`).
    - A lease is atomic: one caller wins each waiting trial. A group lease takes the oldest
      waiting trial and more of its `group`; a copy of a key that is already live is
      dropped as a duplicate when taken (study.queue.ledger).
    - A leased trial whose heartbeat is older than the grace period is stale: `fail_stale`
      fails it and puts a copy back (at most `max_retry` times in a row); its old lease no
      longer holds, so its worker can no longer tell a result.
    """

    name: str  # the study
    url: str  # where it lives (shown with the password hidden)
    settings: QueueSettings

    # ------------------------------------------------------------------ reading

    def trials(self, states: Collection[TrialStatus] | None = None) -> list[QueuedTrial]:
        """Every attempt, oldest first (only those in `states`, if given)."""
        ...

    def trial(self, number: int) -> QueuedTrial:
        """Attempt `number` as it is now (read from the store, not a cache)."""
        ...

    def live_keys(self) -> set[str]:
        """Keys that are waiting, running or complete: everything that must not be enqueued again."""
        ...

    def has_work(self) -> bool:
        """True while any trial waits or runs (a running one may still go stale and come back)."""
        ...

    def siblings(self, lease: Lease) -> list[QueuedTrial]:
        """The other attempts at the leased key, as they are now."""
        ...

    def holds(self, lease: Lease) -> bool:
        """Whether the lease still stands (not failed as stale behind the worker's back)."""
        ...

    # ------------------------------------------------------------------ leasing

    def enqueue(self, items: Iterable[QueueItem], again: Iterable[str] = ()) -> int:
        """Add the items whose key is not live (or is in `again`); return how many were added."""
        ...

    def lease(self) -> Lease | None:
        """Take the oldest waiting trial that is not a duplicate of a live one; None if none is left."""
        ...

    def lease_group(self, max_size: int, prefer: Callable[[str | None], bool] | None = None) -> list[Lease]:
        """Take the oldest waiting trial (the oldest whose group `prefer` accepts, first), then up to
        `max_size - 1` more waiting trials of its group; empty when none is left."""
        ...

    def take(self, trial: QueuedTrial) -> Lease | None:
        """The atomic step under every lease: `trial` from waiting to running for exactly one caller,
        its heartbeat on; None if someone else took it. No duplicate check (see `lease`)."""
        ...

    def heartbeat(self, lease: Lease) -> None:
        ...

    def set_attrs(self, lease: Lease, attrs: Mapping[str, Any]) -> None:
        ...

    def tell(self, lease: Lease, state: TrialStatus, value: float | None, attrs: Mapping[str, Any]) -> bool:
        """End the lease in `state` (completed, pruned or failed) with `attrs`; False if it no longer held."""
        ...

    def complete(self, lease: Lease, value: float, attrs: Mapping[str, Any]) -> bool:
        ...

    def prune(self, lease: Lease, attrs: Mapping[str, Any]) -> bool:
        ...

    def fail(self, lease: Lease, attrs: Mapping[str, Any], requeue: bool = False) -> bool:
        """Tell failed; with `requeue` (an interrupted trial), put a waiting copy with its identity back."""
        ...

    def requeue(self, trial: QueuedTrial) -> None:
        """A waiting copy of `trial` (its identity and params, `requeued_from` its number)."""
        ...

    def fail_stale(self) -> None:
        """Fail the trials whose heartbeat is older than the grace period and put copies back."""
        ...

    def name_objective(self, name: str) -> None:
        """What the trials' value is (the dashboard's axis: `val_accuracy`, not "Objective 0")."""
        ...

    # ------------------------------------------------------------------ workers

    def record_worker(self, record: WorkerRecord) -> None:
        ...

    def workers(self) -> list[WorkerRecord]:
        ...

    def close(self) -> None:
        """Release this thread's connection (a heartbeat thread that ends)."""
        ...
