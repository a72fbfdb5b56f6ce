"""What both queue backends share: leasing one trial or a group, enqueueing, telling, built on a few
primitives each backend provides (read the trials, take one waiting trial atomically, tell, add).

Written once, so the RDB backend and the in-memory one follow the same rules (study.queue.ledger
has the rules themselves: duplicates and retrains).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from study.core.names import GROUP_ATTR, KEY_ATTR
from study.core.status import TrialStatus
from study.queue import ledger
from study.queue.records import COMPLETED, FAILED, PRUNED, RUNNING, WAITING, Lease, QueueItem, QueuedTrial


class LeasingQueue(ABC):
    """The shared half of study.queue.protocol.Queue; a backend adds the primitives below."""

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def trials(self, states: Collection[TrialStatus] | None = None) -> list[QueuedTrial]: ...

    @abstractmethod
    def trial(self, number: int) -> QueuedTrial: ...

    @abstractmethod
    def take(self, trial: QueuedTrial) -> Lease | None: ...

    @abstractmethod
    def tell(self, lease: Lease, state: TrialStatus, value: float | None, attrs: Mapping[str, Any]) -> bool: ...

    @abstractmethod
    def add(self, user_attrs: dict[str, Any]) -> None:
        """A new waiting trial with these user attrs."""

    @abstractmethod
    def requeue(self, trial: QueuedTrial) -> None: ...

    @abstractmethod
    def holds(self, lease: Lease) -> bool: ...

    # ------------------------------------------------------------------ reading

    def live_keys(self) -> set[str]:
        return ledger.live_keys(self.trials())

    def has_work(self) -> bool:
        return bool(self.trials((WAITING, RUNNING)))

    def siblings(self, lease: Lease) -> list[QueuedTrial]:
        return [t for t in self.trials() if t.user_attrs.get(KEY_ATTR) == lease.key and t.number != lease.number]

    # ------------------------------------------------------------------ leasing

    def enqueue(self, items: Iterable[QueueItem], again: Iterable[str] = ()) -> int:
        """Enqueue the items whose key is not already waiting, running or complete (or is in
        `again`, see study.queue.ledger.copies_to_enqueue); return how many were added."""
        copies = ledger.copies_to_enqueue(items, self.trials(), again)
        for attrs in copies:
            self.add(attrs)
        return len(copies)

    def lease(self) -> Lease | None:
        group = self.lease_group(1)
        return group[0] if group else None

    def lease_group(self, max_size: int, prefer: Callable[[str | None], bool] | None = None) -> list[Lease]:
        """Take the oldest waiting trial, then up to `max_size - 1` more waiting trials of its group.
        With `prefer`, the oldest waiting trial whose group it accepts comes first (a worker that already
        compiled a group's program takes its next group of that program before a new one).

        Each take is atomic (one worker wins each trial); what another worker takes meanwhile
        is simply not in our group. Empty when no trial is left to take.
        """
        snapshot = self.trials()
        waiting = [t for t in snapshot if t.state == WAITING]
        if prefer is not None:  # stable: oldest first within the preferred, then within the rest
            waiting.sort(key=lambda t: not prefer(t.user_attrs.get(GROUP_ATTR)))
        leases: list[Lease] = []
        for trial in waiting:
            if len(leases) >= max_size:
                break
            if leases and (leases[0].group is None or trial.user_attrs.get(GROUP_ATTR) != leases[0].group):
                continue
            lease = self._take_checked(trial, snapshot)
            if lease is not None:
                leases.append(lease)
        return leases

    def _take_checked(self, trial: QueuedTrial, snapshot: list[QueuedTrial]) -> Lease | None:
        """Take `trial` unless someone else did, it duplicates a live attempt, or it went stale at once."""
        lease = self.take(trial)
        if lease is None:
            return None
        siblings = [t for t in snapshot if lease.key is not None and t.user_attrs.get(KEY_ATTR) == lease.key
                    and t.number != lease.number]
        if siblings and ledger.drop_if_duplicate(self, lease, siblings):  # type: ignore[arg-type]
            return None
        if not self.holds(lease):  # failed as stale between take and heartbeat (an ancient heartbeat)
            return None
        return lease

    # ------------------------------------------------------------------ telling

    def complete(self, lease: Lease, value: float, attrs: Mapping[str, Any]) -> bool:
        """Tell completed; False if the lease was lost meanwhile (someone failed it as stale)."""
        return self.tell(lease, COMPLETED, value, attrs)

    def prune(self, lease: Lease, attrs: Mapping[str, Any]) -> bool:
        """Tell pruned (the last reported value is the trial's value); False if the lease was lost."""
        return self.tell(lease, PRUNED, None, attrs)

    def fail(self, lease: Lease, attrs: Mapping[str, Any], requeue: bool = False) -> bool:
        """Tell failed; with `requeue`, put a waiting copy (same identity, same params) back in the queue."""
        told = self.tell(lease, FAILED, None, attrs)
        if told and requeue:
            self.requeue(self.trial(lease.number))
        return told
