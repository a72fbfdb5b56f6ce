"""The trial queue's RDB backend: an Optuna study in an RDB storage that any number of workers share.

- Enqueued trials carry their identity as user attrs (`trial_key`, `config`,
  `levels`, `group`), never as a GridSampler grid: GridSampler evaluates duplicate
  points with several workers (optuna#2039, #4627, #5139, #5489).
- Taking (leasing) a trial is Optuna's own atomic step (`set_trial_state_values(RUNNING)`
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

It implements study.queue.protocol.Queue (the leasing rules it shares with the in-memory backend are
in study.queue.leasing and study.queue.ledger); no Optuna type leaves it, except `ask()`'s trial, which
study.tuning wraps. The queue knows nothing about Keras or MLflow; study.execution drives it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from study.core.names import IDENTITY_ATTRS
from study.core.status import TrialStatus
from study.queue.leasing import LeasingQueue
from study.queue.records import (COMPLETED, FAILED, PRUNED, RUNNING, WAITING, Lease, QueueItem, QueuedTrial,
                                 QueueSettings, WorkerRecord, earlier_attempts)
from study.queue.storage import GuardedStorage, open_storage

__all__ = ["Lease", "QueueItem", "QueueSettings", "TrialQueue", "WorkerRecord"]  # the records, where callers used to find them

SETTINGS_ATTR = "queue_settings"  # study system attr: the heartbeat every worker of the study uses
WORKER_PREFIX = "worker:"  # study system attrs: one record per worker that ever joined
STATES = {TrialState.WAITING: WAITING, TrialState.RUNNING: RUNNING, TrialState.COMPLETE: COMPLETED,
          TrialState.PRUNED: PRUNED, TrialState.FAIL: FAILED}
OPTUNA_STATES = {ours: theirs for theirs, ours in STATES.items()}


def queued_trial(frozen: FrozenTrial) -> QueuedTrial:
    """Optuna's record of an attempt as the queue's own."""
    retry_of, requeued_from, repeats = earlier_attempts(frozen.system_attrs)
    return QueuedTrial(number=frozen.number, state=STATES[frozen.state], user_attrs=frozen.user_attrs,
                       value=frozen.value, params=frozen.params, steps=len(frozen.intermediate_values),
                       datetime_start=frozen.datetime_start, datetime_complete=frozen.datetime_complete,
                       retry_of=retry_of, requeued_from=requeued_from, repeats=repeats,
                       fixed="fixed_params" in frozen.system_attrs)


class TrialQueue(LeasingQueue):
    """One Optuna study used as a work queue; safe to share between processes and machines."""

    def __init__(self, storage: GuardedStorage, study: optuna.Study, url: str,
                 settings: QueueSettings) -> None:
        self.storage = storage
        self.study = study
        self.name = study.study_name
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

    def trials(self, states: Collection[TrialStatus] | None = None) -> list[QueuedTrial]:
        optuna_states = tuple(OPTUNA_STATES[s] for s in states) if states is not None else None
        return [queued_trial(t) for t in self.study.get_trials(deepcopy=False, states=optuna_states)]

    def trial(self, number: int) -> QueuedTrial:
        """The current state of trial `number`, read from the database (not a cache)."""
        return queued_trial(self._frozen(number))

    def holds(self, lease: Lease) -> bool:
        """Whether our lease still stands (not failed as stale behind our back, e.g. after a long stall)."""
        return self.storage.get_trial(lease.trial_id).state == TrialState.RUNNING

    def best(self) -> QueuedTrial | None:
        """The best completed trial of a tuning study, as Optuna picks it (None before any completed)."""
        if not self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        return queued_trial(self.study.best_trial)

    # ------------------------------------------------------------------ writing

    def take(self, trial: QueuedTrial) -> Lease | None:
        """WAITING -> RUNNING for exactly one caller; heartbeat first so a crash right after is noticed."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self.storage.record_heartbeat(trial_id)
        try:
            taken = self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
        except UpdateFinishedTrialError:
            return None
        if not taken:
            return None
        self.storage.record_heartbeat(trial_id)
        return Lease(trial_id, trial.number, dict(trial.user_attrs))

    def add(self, user_attrs: dict[str, Any]) -> None:
        self.study.enqueue_trial({}, user_attrs=user_attrs)

    def fail_stale(self) -> None:
        """Fail trials whose worker stopped beating and re-queue them (Optuna's own mechanism).

        Not while the queue's database is down or came back within the grace period: no worker
        could beat meanwhile, and each beats again as soon as it is back."""
        if not self.storage.guard.recently_down(self.settings.grace_period_s):
            optuna.storages.fail_stale_trials(self.study)

    def ask(self) -> tuple[Lease, optuna.Trial]:
        """A trial for a sampler-driven (tuning) study: a waiting one (re-queued) if any, else a new
        proposal; its heartbeat starts at once, so it goes stale, not RUNNING forever, if we die.
        (study.tuning.asked wraps the Optuna trial for the objective.)"""
        trial = self.study.ask()
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self.storage.record_heartbeat(trial_id)
        return Lease(trial_id, trial.number, dict(self.storage.get_trial(trial_id).user_attrs)), trial

    def heartbeat(self, lease: Lease) -> None:
        self.storage.record_heartbeat(lease.trial_id)

    def set_attrs(self, lease: Lease, attrs: Mapping[str, Any]) -> None:
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(lease.trial_id, key, value)

    def tell(self, lease: Lease, state: TrialStatus, value: float | None, attrs: Mapping[str, Any]) -> bool:
        try:
            for key, val in attrs.items():
                self.storage.set_trial_user_attr(lease.trial_id, key, val)
            self.study.tell(lease.number, value, state=OPTUNA_STATES[state])
        except (UpdateFinishedTrialError, ValueError, RuntimeError) as exc:
            if self.storage.get_trial(lease.trial_id).state.is_finished():
                return False  # failed as stale meanwhile: the trial is someone else's now
            raise exc
        return True

    def requeue(self, trial: QueuedTrial) -> None:
        """A WAITING copy of `trial`, as RetryHeartbeatStaleTrialCallback makes (without counting a retry)."""
        frozen = self._frozen(trial.number)
        system_attrs = {**frozen.system_attrs, "requeued_from": frozen.number}
        user_attrs = {k: v for k, v in frozen.user_attrs.items() if k in IDENTITY_ATTRS}
        self.study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=frozen.params, distributions=frozen.distributions,
            user_attrs=user_attrs, system_attrs=system_attrs))

    def name_objective(self, name: str) -> None:
        if self.study.metric_names != [name]:  # optuna-dashboard's axes: not "Objective 0"
            self.study.set_metric_names([name])

    # ------------------------------------------------------------------ workers

    def record_worker(self, record: WorkerRecord) -> None:
        self.storage.set_study_system_attr(self.study_id, WORKER_PREFIX + record.worker, asdict(record))

    def workers(self) -> list[WorkerRecord]:
        attrs = self.storage.get_study_system_attrs(self.study_id)
        return [WorkerRecord(**value) for key, value in sorted(attrs.items()) if key.startswith(WORKER_PREFIX)]

    def close(self) -> None:
        self.storage.remove_session()

    # ------------------------------------------------------------------ internals

    def _frozen(self, number: int) -> FrozenTrial:
        return self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))


_NOT_YET = object()  # _wait_for_settings: an empty study without settings, perhaps a few milliseconds old


def _wait_for_settings(storage: optuna.storages.RDBStorage, study: optuna.Study,
                       timeout_s: float = 10.0) -> QueueSettings | None:
    """The settings the study's creator stored (it writes them right after creating the study).

    A study without them that already has trials was made by other code (e.g. plain
    Optuna): None at once. An empty one may be a few milliseconds old: wait briefly.
    """
    study_id = storage.get_study_id_from_name(study.study_name)

    def read() -> object:
        stored = storage.get_study_system_attrs(study_id).get(SETTINGS_ATTR)
        if stored is not None:
            return QueueSettings(**stored)
        return None if storage.get_n_trials(study_id) > 0 else _NOT_YET

    return Retrying(retry=retry_if_result(lambda value: value is _NOT_YET), stop=stop_after_delay(timeout_s),
                    wait=wait_fixed(0.2), retry_error_callback=lambda state: None)(read)
