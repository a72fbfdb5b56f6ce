"""Where a queued study stands: each key's state, attempts, workers seen alive, ETA.

Read from the queue only, so it is quick and works from any machine that can reach
its storage. Every count is per trial *key* (one grid point and seed), so
retries and dropped duplicates never inflate "completed".
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from study.core.names import GROUP_ATTR, KEY_ATTR, RECOVERED_ATTR, STATUS_ATTR, WORKER_ATTR
from study.core.status import TrialStatus
from study.queue.ledger import replaced_attempts, trained
from study.queue.protocol import Queue
from study.queue.records import COMPLETED, FAILED, RUNNING, WAITING, QueuedTrial, WorkerRecord

# Why an attempt ended failed (user attr `trial_status`); no attr = its worker died (heartbeat went stale).
ATTEMPT_KINDS = ("interrupted", "failed", "duplicate", "lost")
KEY_STATES = ("completed", "diverged", "running", "waiting", "failed", "interrupted", "lost", "not queued")


@dataclass
class StudyStatus:
    study: str
    storage: str
    total: int
    keys: Counter = field(default_factory=Counter)  # key state -> number of keys of the spec
    attempts: Counter = field(default_factory=Counter)  # failed attempts by kind (each was re-queued or dropped)
    alive: list[WorkerRecord] = field(default_factory=list)
    gone: list[WorkerRecord] = field(default_factory=list)
    mean_trial_s: float | None = None
    eta_s: float | None = None

    @property
    def done(self) -> int:
        return self.keys["completed"] + self.keys["diverged"]

    @property
    def complete(self) -> bool:
        return self.done == self.total


def attempt_kind(trial: QueuedTrial) -> str:
    return trial.user_attrs.get(STATUS_ATTR) or TrialStatus.LOST.value


def key_states(trials: list[QueuedTrial], keys: list[str]) -> dict[str, str]:
    """Each key's state: done if any attempt completed, else running, waiting, or how its last attempt ended.

    A completed attempt that a later copy replaces (`retrains`: its MLflow run was lost, so the
    key was queued again) no longer makes the key done."""
    by_key: dict[str, list[QueuedTrial]] = {}
    for trial in trials:
        key = trial.user_attrs.get(KEY_ATTR)
        if key is not None:
            by_key.setdefault(key, []).append(trial)
    replaced = replaced_attempts(trials)
    out = {}
    for key in keys:
        attempts = by_key.get(key, [])
        completed = [t for t in attempts if trained(t, replaced)]
        states = {t.state for t in attempts}
        if completed:
            done = completed[0]
            out[key] = "diverged" if done.user_attrs.get(STATUS_ATTR) == "diverged" else "completed"
        elif RUNNING in states:
            out[key] = "running"
        elif WAITING in states:
            out[key] = "waiting"
        elif attempts:
            last = max(attempts, key=lambda t: t.number)
            out[key] = {"duplicate": "failed"}.get(attempt_kind(last), attempt_kind(last))
        else:
            out[key] = "not queued"
    return out


def collect(queue: Queue, keys: list[str], now: float | None = None) -> StudyStatus:
    """Snapshot of the study for the given spec keys (one read of all trials, one of the worker records)."""
    now = time.time() if now is None else now
    trials = queue.trials()
    status = StudyStatus(study=queue.name, storage=queue.url, total=len(keys))
    status.keys.update(key_states(trials, keys).values())
    status.attempts.update(attempt_kind(t) for t in trials if t.state == FAILED)
    status.alive, status.gone = split_workers(queue, now)
    timed = [t for t in trials if t.state == COMPLETED and t.datetime_start and t.datetime_complete
             and not t.user_attrs.get(RECOVERED_ATTR)]
    if timed:
        status.mean_trial_s = seconds_per_trial(timed)
        remaining = status.keys["waiting"] + status.keys["running"] / 2 + status.keys["not queued"]
        remaining += status.keys["interrupted"] + status.keys["lost"]
        status.eta_s = status.mean_trial_s * remaining / max(1, len(status.alive))
    return status


def seconds_per_trial(completed: list[QueuedTrial]) -> float:
    """A worker's time per trial. Trials trained together (one group, one worker) each span the whole
    group's time, so a group counts once: its span over its size (else a fused grid's ETA is 12x long)."""
    spans: dict[tuple, list[QueuedTrial]] = {}
    for trial in completed:
        group = trial.user_attrs.get(GROUP_ATTR)
        together = (group, trial.user_attrs.get(WORKER_ATTR)) if group is not None else ("", trial.number)
        spans.setdefault(together, []).append(trial)
    seconds = sum((max(t.datetime_complete for t in members) - min(t.datetime_start for t in members)).total_seconds()
                  for members in spans.values())
    return seconds / len(completed)


def split_workers(queue: Queue, now: float) -> tuple[list[WorkerRecord], list[WorkerRecord]]:
    """(alive, gone): a worker is alive while its last beat is within the grace period and it has not stopped."""
    alive, gone = [], []
    for record in queue.workers():
        fresh = now - record.last_seen <= queue.settings.grace_period_s
        (alive if fresh and record.state != "stopped" else gone).append(record)
    return alive, gone
