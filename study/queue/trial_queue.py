"""The trial queue: an Optuna study in an RDB storage that any number of workers share.

- Enqueued trials carry their identity as user attrs (`trial_key`, `config`,
  `levels`, `group`), never as a GridSampler grid: GridSampler evaluates duplicate
  points with several workers (optuna#2039, #4627, #5139, #5489).
- Taking a trial is Optuna's own atomic step (`set_trial_state_values(RUNNING)`
  succeeds for exactly one caller; see study.queue.storage for SQLite).
- A worker may take a *group*: the oldest waiting trial, then further waiting
  trials with the same `group` attr (trials an executor can train together). Each
  take is atomic; the worker's heartbeat covers the whole group, so if it dies every
  trial of the group goes stale and back to the queue.
- `enqueue_trial` is documented to duplicate when several processes enqueue at
  once, so a taken trial is checked against its siblings with the same key: the
  lower-numbered live one wins, the other is dropped (FAIL, `duplicate_of`).
- A heartbeat is recorded *before* the take, so a worker killed right after
  taking still leaves a trial that goes stale instead of RUNNING forever.
- Interrupted trials are re-queued as WAITING copies, the way Optuna's
  `RetryHeartbeatStaleTrialCallback` re-queues the trials of dead workers.

The queue knows nothing about Keras or MLflow; study.execution drives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from study.core.names import (CONFIG_ATTR, DUPLICATE_ATTR, GROUP_ATTR, IDENTITY_ATTRS, KEY_ATTR, LEVELS_ATTR,
                              RETRAINS_ATTR, STATUS_ATTR, TAGS_ATTR)
from study.core.status import TrialStatus
from study.queue.storage import QueueSettings, open_storage

SETTINGS_ATTR = "queue_settings"  # study system attr: the heartbeat every worker of the study uses
WORKER_PREFIX = "worker:"  # study system attrs: one record per worker that ever joined


@dataclass(frozen=True)
class QueueItem:
    """One trial to enqueue: its stable key, its complete config and the factor levels behind it."""

    key: str
    config: dict[str, Any]
    levels: dict[str, str] = field(default_factory=dict)
    group: str | None = None  # trials with the same group can be taken and trained together
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags of its run (e.g. stage, arm)


@dataclass(frozen=True)
class Claim:
    """A trial this worker holds (RUNNING, heartbeat on) and must tell exactly once."""

    trial_id: int
    number: int
    user_attrs: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.user_attrs.get(KEY_ATTR)

    @property
    def group(self) -> str | None:
        return self.user_attrs.get(GROUP_ATTR)


@dataclass(frozen=True)
class WorkerRecord:
    """What a worker last said about itself (study system attr `worker:<id>`)."""

    worker: str
    host: str
    pid: int
    state: str  # starting | training | idle | stopped
    last_seen: float  # unix time on the worker's clock
    trial: int | None = None
    done: int = 0


class TrialQueue:
    """One Optuna study used as a work queue; safe to share between processes and machines."""

    def __init__(self, storage: optuna.storages.RDBStorage, study: optuna.Study, url: str,
                 settings: QueueSettings) -> None:
        self.storage = storage
        self.study = study
        self.url = url
        self.settings = settings
        self.study_id = storage.get_study_id_from_name(study.study_name)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, url: str, study_name: str, settings: QueueSettings = QueueSettings(),
             direction: str = "maximize", create: bool = True, readonly: bool = False,
             sampler: optuna.samplers.BaseSampler | None = None,
             pruner: optuna.pruners.BasePruner | None = None) -> TrialQueue | None:
        """Load the study, or create it (and record `settings`) if `create`; None if absent and not created.

        If the study already exists, its stored settings win over `settings`. A
        `readonly` queue is for looking only (see open_storage). `sampler` and
        `pruner` serve `ask()` and trial pruning in tuning studies; a grid takes only
        enqueued trials and needs neither.
        """
        create = create and not readonly
        storage = open_storage(url, settings, readonly)
        load = dict(study_name=study_name, sampler=sampler, pruner=pruner)
        try:
            study = optuna.load_study(storage=storage, **load)
        except KeyError:
            if not create:
                return None
            try:
                study = optuna.create_study(storage=storage, direction=direction, **load)
                storage.set_study_system_attr(storage.get_study_id_from_name(study_name), SETTINGS_ATTR,
                                              asdict(settings))
            except DuplicatedStudyError:  # another worker created it between our load and create
                study = optuna.load_study(storage=storage, **load)
        stored = _wait_for_settings(storage, study)
        if stored is not None and stored != settings:
            settings = stored
            storage = open_storage(url, settings, readonly)
            study = optuna.load_study(storage=storage, **load)
        return cls(storage, study, url, settings)

    # ------------------------------------------------------------------ reading

    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def live_keys(self) -> set[str]:
        """Keys that are waiting, running or complete: everything that must not be enqueued again."""
        return live_keys(self.trials())

    def has_work(self) -> bool:
        """True while any trial waits or runs (a running one may still go stale and come back)."""
        return bool(self.trials((TrialState.WAITING, TrialState.RUNNING)))

    def trial(self, number: int) -> FrozenTrial:
        """The current state of trial `number`, read from the database (not a cache)."""
        return self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))

    def holds(self, claim: Claim) -> bool:
        """Whether our claim still stands (not failed as stale behind our back, e.g. after a long stall)."""
        return self.storage.get_trial(claim.trial_id).state == TrialState.RUNNING

    # ------------------------------------------------------------------ writing

    def enqueue(self, items: Iterable[QueueItem], again: Iterable[str] = ()) -> int:
        """Enqueue the items whose key is not already waiting, running or complete (or is in
        `again`: complete here but known to be lost elsewhere, so the copy records which completed
        attempt it replaces); return how many were added."""
        trials, forced = self.trials(), set(again)
        live = live_keys(trials) - forced
        replaced = {t.user_attrs[KEY_ATTR]: t.number for t in trials  # numbers ascend: the newest wins
                    if t.state == TrialState.COMPLETE and t.user_attrs.get(KEY_ATTR) in forced}
        added = 0
        for item in items:
            if item.key in live:
                continue
            attrs = {KEY_ATTR: item.key, CONFIG_ATTR: item.config, LEVELS_ATTR: item.levels}
            if item.group is not None:
                attrs[GROUP_ATTR] = item.group
            if item.tags:
                attrs[TAGS_ATTR] = item.tags
            if item.key in replaced:
                attrs[RETRAINS_ATTR] = replaced[item.key]
            self.study.enqueue_trial({}, user_attrs=attrs)
            live.add(item.key)
            added += 1
        return added

    def siblings(self, claim: Claim) -> list[FrozenTrial]:
        """The other attempts at the same key, as they are now."""
        return [t for t in self.trials() if t.user_attrs.get(KEY_ATTR) == claim.key and t.number != claim.number]

    def fail_stale(self) -> None:
        """Fail trials whose worker stopped beating and re-queue them (Optuna's own mechanism)."""
        optuna.storages.fail_stale_trials(self.study)

    def claim(self) -> Claim | None:
        """Take the oldest waiting trial that is not a duplicate of a live one; None if none is left."""
        group = self.claim_group(1)
        return group[0] if group else None

    def claim_group(self, max_size: int, prefer: Callable[[str | None], bool] | None = None) -> list[Claim]:
        """Take the oldest waiting trial, then up to `max_size - 1` more waiting trials of its group.
        With `prefer`, the oldest waiting trial whose group it accepts comes first (a worker that already
        compiled a group's program takes its next group of that program before a new one).

        Each take is atomic (one worker wins each trial); what another worker takes meanwhile
        is simply not in our group. Empty when no trial is left to take.
        """
        snapshot = self.trials()
        waiting = [t for t in snapshot if t.state == TrialState.WAITING]
        if prefer is not None:  # stable: oldest first within the preferred, then within the rest
            waiting.sort(key=lambda t: not prefer(t.user_attrs.get(GROUP_ATTR)))
        claims: list[Claim] = []
        for frozen in waiting:
            if len(claims) >= max_size:
                break
            if claims and (claims[0].group is None or frozen.user_attrs.get(GROUP_ATTR) != claims[0].group):
                continue
            claim = self._take_checked(frozen, snapshot)
            if claim is not None:
                claims.append(claim)
        return claims

    def _take_checked(self, frozen: FrozenTrial, snapshot: list[FrozenTrial]) -> Claim | None:
        """Take `frozen` unless someone else did, it duplicates a live attempt, or it went stale at once."""
        claim = self._take(frozen)
        if claim is None:
            return None
        siblings = [t for t in snapshot if claim.key is not None and t.user_attrs.get(KEY_ATTR) == claim.key
                    and t.number != claim.number]
        if siblings and self._drop_if_duplicate(claim, siblings):
            return None
        if not self.holds(claim):  # failed as stale between take and heartbeat (an ancient heartbeat)
            return None
        return claim

    def ask(self) -> tuple[Claim, optuna.Trial]:
        """A trial for a sampler-driven (tuning) study: a waiting one (re-queued) if any, else a new
        proposal; its heartbeat starts at once, so it goes stale, not RUNNING forever, if we die."""
        trial = self.study.ask()
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self.storage.record_heartbeat(trial_id)
        return Claim(trial_id, trial.number, dict(self.storage.get_trial(trial_id).user_attrs)), trial

    def heartbeat(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)

    def set_attrs(self, claim: Claim, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(claim.trial_id, key, value)

    def complete(self, claim: Claim, value: float, attrs: dict[str, Any]) -> bool:
        """Tell COMPLETE; False if the claim was lost meanwhile (someone failed it as stale)."""
        return self._tell(claim, TrialState.COMPLETE, value, attrs)

    def prune(self, claim: Claim, attrs: dict[str, Any]) -> bool:
        """Tell PRUNED (Optuna takes the last reported value as the trial's value); False if the claim was lost."""
        return self._tell(claim, TrialState.PRUNED, None, attrs)

    def fail(self, claim: Claim, attrs: dict[str, Any], requeue: bool = False) -> bool:
        """Tell FAIL; with `requeue`, put a WAITING copy (same identity, same params) back in the queue."""
        told = self._tell(claim, TrialState.FAIL, None, attrs)
        if told and requeue:
            self.requeue(self.storage.get_trial(claim.trial_id))
        return told

    def requeue(self, trial: FrozenTrial) -> None:
        """A WAITING copy of `trial`, as RetryHeartbeatStaleTrialCallback makes (without counting a retry)."""
        system_attrs = {**trial.system_attrs, "requeued_from": trial.number}
        user_attrs = {k: v for k, v in trial.user_attrs.items() if k in IDENTITY_ATTRS}
        self.study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs=user_attrs, system_attrs=system_attrs))

    # ------------------------------------------------------------------ workers

    def record_worker(self, record: WorkerRecord) -> None:
        self.storage.set_study_system_attr(self.study_id, WORKER_PREFIX + record.worker, asdict(record))

    def workers(self) -> list[WorkerRecord]:
        attrs = self.storage.get_study_system_attrs(self.study_id)
        return [WorkerRecord(**value) for key, value in sorted(attrs.items()) if key.startswith(WORKER_PREFIX)]

    # ------------------------------------------------------------------ internals

    def _take(self, frozen: FrozenTrial) -> Claim | None:
        """WAITING -> RUNNING for exactly one caller; heartbeat first so a crash right after is noticed."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
        self.storage.record_heartbeat(trial_id)
        try:
            taken = self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return None
        if not taken:
            return None
        self.storage.record_heartbeat(trial_id)
        return Claim(trial_id, frozen.number, dict(frozen.user_attrs))

    def _drop_if_duplicate(self, claim: Claim, siblings: list[FrozenTrial]) -> bool:
        """Resolve concurrent duplicates of one key: take their waiting copies, yield to an older live one.

        Once we hold `claim`, each waiting sibling is taken and dropped, so no one else can
        start it. A sibling that someone else runs wins if its number is lower: of two
        attempts taken at the same moment exactly one has the lower number. A sibling
        enqueued after `siblings` was read has a higher number, so its taker yields to us.
        A sibling that already completed (its taker looked before our copy was enqueued) wins
        whatever its number: the key is trained. Only the completed attempts that a copy queued
        again replaces (`retrains`, see `enqueue`; carried by its retries) do not count.
        """
        for sibling in siblings:
            if sibling.state == TrialState.WAITING:
                taken = self._take(sibling)
                if taken is not None:
                    self._tell(taken, TrialState.FAIL, None, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: claim.number})
        replaced = replaced_attempts([*siblings, self.trial(claim.number)])
        for sibling in (self.trial(s.number) for s in siblings):
            if trained(sibling, replaced) or (sibling.state == TrialState.RUNNING and sibling.number < claim.number):
                self._tell(claim, TrialState.FAIL, None, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: sibling.number})
                return True
        return False

    def _tell(self, claim: Claim, state: TrialState, value: float | None, attrs: dict[str, Any]) -> bool:
        try:
            for key, val in attrs.items():
                self.storage.set_trial_user_attr(claim.trial_id, key, val)
            self.study.tell(claim.number, value, state=state)
        except (UpdateFinishedTrialError, ValueError, RuntimeError) as exc:
            if self.storage.get_trial(claim.trial_id).state.is_finished():
                return False  # failed as stale meanwhile: the trial is someone else's now
            raise exc
        return True


def replaced_attempts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Per key, the newest completed attempt a later copy replaces (`retrains`, see TrialQueue.enqueue):
    completed attempts up to that number no longer make the key done."""
    replaced: dict[str, int] = {}
    for trial in trials:
        if RETRAINS_ATTR in trial.user_attrs and KEY_ATTR in trial.user_attrs:
            key = trial.user_attrs[KEY_ATTR]
            replaced[key] = max(replaced.get(key, -1), trial.user_attrs[RETRAINS_ATTR])
    return replaced


def trained(trial: FrozenTrial, replaced: dict[str, int]) -> bool:
    """A completed attempt that no later copy replaces: its key is done (`replaced`: replaced_attempts)."""
    return trial.state == TrialState.COMPLETE and trial.number > replaced.get(trial.user_attrs.get(KEY_ATTR), -1)


def live_keys(trials: list[FrozenTrial]) -> set[str]:
    """Keys with an attempt waiting, running or trained (see TrialQueue.live_keys)."""
    keyed = [t for t in trials if KEY_ATTR in t.user_attrs]
    replaced = replaced_attempts(keyed)  # carried by copies in any state, failed ones too
    return {t.user_attrs[KEY_ATTR] for t in keyed
            if t.state in (TrialState.WAITING, TrialState.RUNNING) or trained(t, replaced)}


def _wait_for_settings(storage: optuna.storages.RDBStorage, study: optuna.Study,
                       timeout_s: float = 10.0) -> QueueSettings | None:
    """The settings the study's creator stored (it writes them right after creating the study).

    A study without them that already has trials was made by other code (e.g. plain
    Optuna): None at once. An empty one may be a few milliseconds old: wait briefly.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    deadline = time.monotonic() + timeout_s
    while True:
        stored = storage.get_study_system_attrs(study_id).get(SETTINGS_ATTR)
        if stored is not None:
            return QueueSettings(**stored)
        if time.monotonic() > deadline or storage.get_n_trials(study_id) > 0:
            return None
        time.sleep(0.2)
