"""What a queue hands out and takes in: the project's own records, the same for every backend.

No Optuna type leaves study/queue/: an attempt at a trial is a `QueuedTrial`, a trial a
worker holds is a `Lease`, where an attempt stands is a `TrialStatus` (study.core.status).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from study.core.names import CONFIG_ATTR, GROUP_ATTR, KEY_ATTR, LEVELS_ATTR, STATUS_ATTR
from study.core.status import TrialStatus

# Where an attempt stands in the queue: Optuna's five trial states in the project's words.
WAITING, RUNNING, COMPLETED, PRUNED, FAILED = (TrialStatus.WAITING, TrialStatus.RUNNING, TrialStatus.COMPLETED,
                                               TrialStatus.PRUNED, TrialStatus.FAILED)
QUEUE_STATES = (WAITING, RUNNING, COMPLETED, PRUNED, FAILED)
# The same states as Optuna names them: the words `study tune`'s counts, its status and report, and the
# `optuna_state` tag on a tuning trial's run show (optuna-dashboard shows them too).
STATE_NAMES = {WAITING: "WAITING", RUNNING: "RUNNING", COMPLETED: "COMPLETE", PRUNED: "PRUNED", FAILED: "FAIL"}


@dataclass(frozen=True)
class QueueSettings:
    """How fast a dead worker is noticed.

    A trial is stale when its worker has not beaten for `grace_period_s`; it is then
    failed and re-queued (at most `max_retry` times in a row, so a trial that kills
    its worker every time cannot loop forever; running the study again re-queues it).
    The first worker to create a study stores these; later workers adopt them, so
    all workers agree on what "stale" means.
    """

    heartbeat_interval_s: int = 5
    grace_period_s: int = 30
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s < 1 or self.grace_period_s <= self.heartbeat_interval_s or self.max_retry < 0:
            raise ValueError(f"invalid queue settings {self}: need heartbeat >= 1 s, grace > heartbeat, retries >= 0")


@dataclass(frozen=True)
class QueueItem:
    """One trial to enqueue: its stable key, its complete config and the factor levels behind it."""

    key: str
    config: dict[str, Any]
    levels: dict[str, str] = field(default_factory=dict)
    group: str | None = None  # trials with the same group can be taken and trained together
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags of its run (e.g. stage, arm)


class _Identity:
    """The identity every attempt of a trial carries in its user attrs."""

    user_attrs: Mapping[str, Any]

    @property
    def key(self) -> str | None:
        return self.user_attrs.get(KEY_ATTR)

    @property
    def group(self) -> str | None:
        return self.user_attrs.get(GROUP_ATTR)

    @property
    def config(self) -> dict[str, Any]:
        return self.user_attrs.get(CONFIG_ATTR) or {}

    @property
    def levels(self) -> dict[str, str]:
        return self.user_attrs.get(LEVELS_ATTR) or {}


@dataclass(frozen=True)
class Lease(_Identity):
    """A trial this worker holds (running, its heartbeat on) and must tell exactly once.

    A lease ends when the worker tells the trial's result, or when the trial goes stale
    (no heartbeat for the grace period) and the queue gives it to another worker.
    """

    trial_id: int  # the backend's id of the attempt
    number: int
    user_attrs: dict[str, Any]


@dataclass(frozen=True)
class QueuedTrial(_Identity):
    """One attempt at a trial, as the queue holds it now."""

    number: int
    state: TrialStatus  # one of QUEUE_STATES
    user_attrs: Mapping[str, Any]  # identity (key, config, levels, group, retrains) and what workers recorded
    value: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # a tuning trial's searched values
    steps: int = 0  # values reported to the pruner (a tuning trial's epochs completed)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None
    retry_of: int | None = None  # the first attempt that went stale, when this one retries it
    requeued_from: int | None = None  # the interrupted attempt this copy was re-queued from
    repeats: frozenset[int] = frozenset()  # every earlier attempt this one repeats
    fixed: bool = False  # its params were enqueued (the base, a grid point), not proposed by a sampler

    @property
    def status(self) -> str | None:
        """How the attempt ended, as its worker recorded it (None: no worker said; e.g. it went stale)."""
        return self.user_attrs.get(STATUS_ATTR)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


@dataclass(frozen=True)
class WorkerRecord:
    """What a worker last said about itself (one record per worker that ever joined)."""

    worker: str
    host: str
    pid: int
    state: str  # starting | training | idle | stopped
    last_seen: float  # unix time on the worker's clock
    trial: int | None = None
    done: int = 0


def earlier_attempts(system_attrs: Mapping[str, Any]) -> tuple[int | None, int | None, frozenset[int]]:
    """(retry_of, requeued_from, repeats) from an attempt's bookkeeping: stale ones (Optuna's retry callback
    records `failed_trial` and `retry_history`) and interrupted ones (`requeue` records `requeued_from`)."""
    retry_of, requeued_from = system_attrs.get("failed_trial"), system_attrs.get("requeued_from")
    numbers = {retry_of, requeued_from, *system_attrs.get("retry_history", [])}
    return retry_of, requeued_from, frozenset(int(n) for n in numbers if n is not None)
