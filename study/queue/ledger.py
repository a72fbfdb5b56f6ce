"""The trial ledger: every rule that keeps the queue and the record (MLflow) in agreement on a trial key.

The queue says who trains a key and whether it is done; the record holds the results (MLflow,
study.tracking.record.MlflowRecord, seen here only through `RunRecord`). Exactly once, on both
sides, rests on these rules:

- **Duplicates.** Two processes enqueueing at once can put a key in the queue twice (Optuna
  documents it for `enqueue_trial`). Whoever takes a copy checks its twins (`drop_if_duplicate`):
  their waiting copies are taken and dropped; a twin running with a lower number, or trained,
  wins, and the taken copy is dropped (failed, `trial_status=duplicate`, `duplicate_of`), never trained.
- **Retrains.** A key the queue calls done but the record has no finished run of (a deleted run,
  a store restored from an older backup) is queued again (`TrialLedger.enqueue`); the copy records
  the newest completed attempt it replaces (`retrains`), which no longer makes the key done
  (`replaced_attempts`, `trained`), so the copy is trained, not dropped as a duplicate.
- **Adoption.** Before training a leased key, the worker asks the record for a finished run of it
  (a worker died after recording but before telling the queue): it tells the queue that result
  (`recovered`) instead of training again, or drops the lease as a duplicate if a twin completed
  meanwhile (`TrialLedger.adopt`).
- **Lost runs.** Runs left open by attempts whose worker died or stalled are closed as interrupted
  before the key is trained again (`adopt`, `close_earlier_attempts`).
- **Still ours.** Just before a result is recorded FINISHED, the worker checks it still holds the
  lease (`still_ours`): one that stalled past the grace period has lost the trial to another worker
  and records `lost` (run KILLED, `LOST_LEASE`), so a key never gets two finished runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from study.core.names import (CONFIG_ATTR, DUPLICATE_ATTR, GROUP_ATTR, KEY_ATTR, LEVELS_ATTR, RECOVERED_ATTR,
                              RETRAINS_ATTR, RUN_ID_ATTR, STATUS_ATTR, TAGS_ATTR)
from study.core.status import TrialStatus
from study.queue.protocol import Queue
from study.queue.records import COMPLETED, FAILED, RUNNING, STATE_NAMES, WAITING, Lease, QueueItem, QueuedTrial

LOST_RUN = "its worker lost the trial (killed or stalled); re-queued"
LOST_LEASE = ("the queue gave this trial to another worker (no heartbeat for longer than the grace period); "
              "this run is not the trial's result")


# --------------------------------------------------------------------------- the queue's side

def replaced_attempts(trials: Iterable[QueuedTrial]) -> dict[str, int]:
    """Per key, the newest completed attempt a later copy replaces (`retrains`, see `copies_to_enqueue`):
    completed attempts up to that number no longer make the key done."""
    replaced: dict[str, int] = {}
    for trial in trials:
        if RETRAINS_ATTR in trial.user_attrs and KEY_ATTR in trial.user_attrs:
            key = trial.user_attrs[KEY_ATTR]
            replaced[key] = max(replaced.get(key, -1), trial.user_attrs[RETRAINS_ATTR])
    return replaced


def trained(trial: QueuedTrial, replaced: dict[str, int]) -> bool:
    """A completed attempt that no later copy replaces: its key is done (`replaced`: replaced_attempts)."""
    return trial.state == COMPLETED and trial.number > replaced.get(trial.user_attrs.get(KEY_ATTR), -1)


def live_keys(trials: list[QueuedTrial]) -> set[str]:
    """Keys with an attempt waiting, running or trained: everything that must not be enqueued again."""
    keyed = [t for t in trials if KEY_ATTR in t.user_attrs]
    replaced = replaced_attempts(keyed)  # carried by copies in any state, failed ones too
    return {t.user_attrs[KEY_ATTR] for t in keyed if t.state in (WAITING, RUNNING) or trained(t, replaced)}


def trained_keys(trials: list[QueuedTrial]) -> set[str]:
    """Keys the queue calls done (an attempt completed that no later copy replaces)."""
    replaced = replaced_attempts(trials)
    return {t.user_attrs[KEY_ATTR] for t in trials if KEY_ATTR in t.user_attrs and trained(t, replaced)}


def copies_to_enqueue(items: Iterable[QueueItem], trials: list[QueuedTrial], again: Iterable[str] = ()
                      ) -> list[dict[str, Any]]:
    """The user attrs of each copy to add: one per item whose key is not live, or is in `again`
    (complete here but lost from the record, so the copy records which completed attempt it replaces)."""
    forced = set(again)
    live = live_keys(trials) - forced
    replaced = {t.user_attrs[KEY_ATTR]: t.number for t in trials  # numbers ascend: the newest wins
                if t.state == COMPLETED and t.user_attrs.get(KEY_ATTR) in forced}
    copies = []
    for item in items:
        if item.key in live:
            continue
        attrs: dict[str, Any] = {KEY_ATTR: item.key, CONFIG_ATTR: item.config, LEVELS_ATTR: item.levels}
        if item.group is not None:
            attrs[GROUP_ATTR] = item.group
        if item.tags:
            attrs[TAGS_ATTR] = item.tags
        if item.key in replaced:
            attrs[RETRAINS_ATTR] = replaced[item.key]
        copies.append(attrs)
        live.add(item.key)
    return copies


def drop_if_duplicate(queue: Queue, lease: Lease, siblings: list[QueuedTrial]) -> bool:
    """Resolve concurrent duplicates of one key: take their waiting copies, yield to an older live one.

    Once we hold `lease`, each waiting sibling is taken and dropped, so no one else can
    start it. A sibling that someone else runs wins if its number is lower: of two
    attempts taken at the same moment exactly one has the lower number. A sibling
    enqueued after `siblings` was read has a higher number, so its taker yields to us.
    A sibling that already completed (its taker looked before our copy was enqueued) wins
    whatever its number: the key is trained. Only the completed attempts that a copy queued
    again replaces (`retrains`; carried by its retries) do not count.
    """
    for sibling in siblings:
        if sibling.state == WAITING:
            taken = queue.take(sibling)
            if taken is not None:
                queue.tell(taken, FAILED, None, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: lease.number})
    replaced = replaced_attempts([*siblings, queue.trial(lease.number)])
    for sibling in (queue.trial(s.number) for s in siblings):
        if trained(sibling, replaced) or (sibling.state == RUNNING and sibling.number < lease.number):
            queue.tell(lease, FAILED, None, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: sibling.number})
            return True
    return False


def objective_value(val_acc: float | None) -> float:
    """What the queue stores for a grid trial: its final val accuracy (0 if it diverged before any finite epoch)."""
    return float(val_acc) if val_acc is not None and math.isfinite(val_acc) else 0.0


# --------------------------------------------------------------------------- the record's side

@dataclass(frozen=True)
class RecordedRun:
    """A finished run the record holds for a key (its result)."""

    run_id: str
    status: str  # completed | diverged
    val_accuracy: float | None


class RunRecord(Protocol):
    """The store of results the queue must agree with (MLflow: study.tracking.record.MlflowRecord)."""

    def finished(self, key: str) -> RecordedRun | None:
        """The first finished run of `key` with a result (completed or diverged), if any."""
        ...

    def done_keys(self) -> set[str]:
        """Every key with such a run."""
        ...

    def close_lost(self, key: str, reason: str) -> None:
        """End the runs of `key` left open (their worker is gone) as interrupted."""
        ...

    def close_attempts(self, numbers: Iterable[int], reason: str) -> None:
        """End the runs of the attempts numbered `numbers` left open as interrupted."""
        ...

    def mirror_state(self, run_ids: Iterable[str], state: str) -> None:
        """Show the attempt's queue state (`STATE_NAMES`) on its ended runs."""
        ...


@dataclass(frozen=True)
class Adopted:
    """What `adopt` told the queue: the recorded result (recovered), or that a twin had it (duplicate)."""

    status: TrialStatus
    val_accuracy: float | None = None


class TrialLedger:
    """The queue and the record of one study, kept in agreement (the rules in this module's doc)."""

    def __init__(self, queue: Queue, record: RunRecord) -> None:
        self.queue = queue
        self.record = record

    def enqueue(self, items: list[QueueItem]) -> int:
        """Queue the items whose key is not waiting, running or complete, and those the queue calls
        complete but the record has no finished run of (the record is the truth); how many were added."""
        again = {i.key for i in items} & trained_keys(self.queue.trials())
        if again:
            again -= self.record.done_keys()
        return self.queue.enqueue(items, again=again)

    def adopt(self, lease: Lease) -> Adopted | None:
        """Tell the queue the key's recorded result, if the record has one; else close the runs that
        lost attempts left open and return None: the key is to be trained."""
        recorded = self.record.finished(lease.key) if lease.key is not None else None
        if recorded is None:
            if lease.key is not None:
                self.record.close_lost(lease.key, LOST_RUN)
            return None
        done_sibling = next((t for t in self.queue.siblings(lease) if t.state == COMPLETED), None)
        if done_sibling is not None:
            self.queue.fail(lease, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: done_sibling.number})
            return Adopted(TrialStatus.DUPLICATE)
        self.queue.complete(lease, objective_value(recorded.val_accuracy),
                            {STATUS_ATTR: recorded.status, RUN_ID_ATTR: recorded.run_id, RECOVERED_ATTR: True})
        return Adopted(TrialStatus.RECOVERED, recorded.val_accuracy)

    def close_earlier_attempts(self, lease: Lease) -> None:
        """Close the runs that the attempts this one repeats (stale or interrupted) left open."""
        repeats = self.queue.trial(lease.number).repeats
        if repeats:
            self.record.close_attempts(repeats, LOST_RUN)

    def link(self, lease: Lease, run_id: str) -> None:
        """The queue's attempt names its run (the run names the attempt by its tags)."""
        self.queue.set_attrs(lease, {RUN_ID_ATTR: run_id})

    def still_ours(self, lease: Lease) -> bool:
        """Asked just before a result is recorded FINISHED (a `False` records the run lost, LOST_LEASE)."""
        return self.queue.holds(lease)

    def mirror(self, run_ids: Iterable[str], state: TrialStatus) -> None:
        """Show the attempt's queue state on its runs (`optuna_state`, as optuna-integration's callback does)."""
        self.record.mirror_state(run_ids, STATE_NAMES[state])
