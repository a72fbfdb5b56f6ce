"""The trials of an ablation spec as a queue source: enqueued once each by key, taken a group at a time.

Exactly once, on both sides: the queue leases a trial to one worker only, and the
trial ledger (study.queue.ledger) keeps the queue and MLflow in agreement: a key whose
run MLflow lost is queued again, a result MLflow already holds is adopted instead of
trained again, runs that lost attempts left open are closed, and a worker that lost
its lease does not record a result.
"""

from __future__ import annotations

from collections.abc import Sequence

from study.config import TrialConfig
from study.core.errors import Interrupted
from study.core.names import (CONFIG_ATTR, LEVELS_ATTR, NUMBER_TAG, OPTUNA_STUDY_TAG, STATUS_ATTR, TAGS_ATTR,
                              WORKER_ATTR)
from study.core.status import DONE_STATUSES, TrialStatus
from study.core.text import format_duration
from study.execution import confirm_stage
from study.execution.sources import TrainingContext, Verdict
from study.execution.status_text import grid_status_text
from study.execution.tracked import Recording, pruned_or_own, run_tracked
from study.queue.ledger import RunRecord, TrialLedger, objective_value
from study.queue.progress import collect, key_states
from study.queue.protocol import Queue
from study.queue.records import Lease, QueueItem
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.training.executors.base import TrialHooks
from study.training.executors.registry import group_of, program_of


OBJECTIVE_NAME = "val_accuracy"  # what a grid trial reports to its queue (see objective_value)


class GridSource:
    """The trials of an ablation spec, enqueued once each by key."""

    kind = "ablation"
    keeps_models = True
    later = "the confirm stage"  # what `study run` says comes after the trials it knows of

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.trials = spec.unique_trials()
        self.keys = [t.key for t in self.trials]
        self.main_keys = list(self.keys)
        self.confirm_known = spec.confirm is None  # the confirm stage's trials are known (or there is none)
        self.programs: set[str] = set()  # programs this worker has compiled: their next groups come first

    def items(self, trials: list[Trial] | None = None) -> list[QueueItem]:
        return [QueueItem(key=t.key, config=t.config.as_dict(), levels=dict(t.levels), group=group_of(t.config))
                for t in (self.trials if trials is None else trials)]

    def confirm(self, queue: Queue) -> int:
        """Enqueue the confirm stage's trials once every main trial is done (study.execution.confirm_stage);
        return how many were newly queued. Its keys then count in this source's progress and status."""
        if self.confirm_known:
            return 0
        trials = confirm_stage.due_trials(self.spec, queue, self.main_keys)
        if trials is None:
            return 0
        self.confirm_known = True
        fresh = [t for t in trials if t.key not in set(self.keys)]
        self.trials += fresh
        self.keys += [t.key for t in fresh]
        return queue.enqueue(self.items(fresh))

    def _known_keys(self, queue: Queue) -> list[str]:
        """The spec's keys plus confirm keys already queued by any worker."""
        if self.confirm_known:
            return self.keys
        return self.keys + [k for k in confirm_stage.queued_keys(self.spec, queue, self.main_keys)
                            if k not in set(self.keys)]

    def enqueue(self, queue: Queue, record: RunRecord | None = None) -> int:
        """Queue the spec's keys that are not waiting, running or complete; with the `record` (MLflow),
        also those the queue calls complete but the record has no finished run of (study.queue.ledger)."""
        queue.name_objective(OBJECTIVE_NAME)
        if record is None:
            return queue.enqueue(self.items())
        return TrialLedger(queue, record).enqueue(self.items())

    def key_status(self, queue: Queue) -> dict[str, str]:
        return key_states(queue.trials(), self._known_keys(queue))

    def next(self, queue: Queue, group_size: int) -> list[Lease]:
        """The next group; one whose program this worker already compiled first (two fused workers then
        compile about half the grid's structures each instead of nearly all of them)."""
        def known(group: str | None) -> bool:
            return program_of(group) in self.programs

        leases = queue.lease_group(group_size, prefer=known)
        if not leases and self.confirm(queue):
            leases = queue.lease_group(group_size, prefer=known)
        if leases and leases[0].group is not None:
            self.programs.add(program_of(leases[0].group))
        return leases

    def done(self, queue: Queue) -> bool:
        """No trial waits or runs, and the confirm stage is not due (it is due once every main trial is done)."""
        if queue.has_work():
            return False
        return self.confirm_known or not confirm_stage.main_done(queue, self.main_keys) or not self.confirm(queue)

    def run(self, leases: Sequence[Lease], ctx: TrainingContext) -> list[Verdict]:
        """Train the leased trials in one executor call; adopt results MLflow already holds."""
        queue, ledger = ctx.queue, ctx.ledger()
        verdicts: dict[int, Verdict] = {}
        todo: list[tuple[int, Lease, Trial]] = []
        for index, lease in enumerate(leases):
            config = TrialConfig(**lease.user_attrs[CONFIG_ATTR])
            if config.key() != lease.key:
                queue.fail(lease, {STATUS_ATTR: TrialStatus.FAILED.value,
                                   "error": f"config hashes to {config.key()}, not {lease.key}: queued by another "
                                            "version of the code"})
                verdicts[index] = Verdict(TrialStatus.FAILED)
                continue
            queue.set_attrs(lease, {WORKER_ATTR: ctx.worker})
            adopted = ledger.adopt(lease)
            if adopted is not None:
                verdicts[index] = Verdict(adopted.status, adopted.val_accuracy)
                continue
            todo.append((index, lease, Trial(config, dict(lease.user_attrs.get(LEVELS_ATTR, {})))))
        if todo:
            if ctx.stop.is_set():
                raise Interrupted()
            ctx.open_parent()
            executor = ctx.executor(todo[0][2].config.executor)
            recording = Recording(
                tags=[{OPTUNA_STUDY_TAG: self.spec.name, NUMBER_TAG: str(lease.number),
                       **lease.user_attrs.get(TAGS_ATTR, {})} for _, lease, _ in todo],
                hooks=self.hooks([lease for _, lease, _ in todo], ctx), status_of=pruned_or_own,
                on_start=lambda i, run_id: ledger.link(todo[i][1], run_id),
                still_ours=lambda i: ledger.still_ours(todo[i][1]))
            outcomes = run_tracked([trial for _, _, trial in todo], self.spec.name, ctx.exp_id, ctx.splits,
                                   ctx.settings, executor, recording, stop=ctx.stop.event)
            for (index, lease, _), outcome in zip(todo, outcomes):
                if outcome.status in DONE_STATUSES:
                    queue.complete(lease, objective_value(outcome.val_accuracy), {STATUS_ATTR: outcome.status})
                elif outcome.status == TrialStatus.FAILED:
                    queue.fail(lease, {STATUS_ATTR: TrialStatus.FAILED.value,
                                       "error": outcome.error.splitlines()[0][:500]})
                verdicts[index] = Verdict(outcome.status, outcome.val_accuracy, outcome.seconds)
        return [verdicts[i] for i in range(len(leases))]

    def hooks(self, leases: Sequence[Lease], ctx: TrainingContext) -> list[TrialHooks] | None:
        """Per-trial epoch listeners beside MLflow's logging: none for a grid (a stage that prunes adds them)."""
        return None

    def describe(self, queue: Queue, finished: Sequence[tuple[Lease, Verdict]]) -> list[str]:
        """One line per trial: study-wide done/total, the trial, its outcome, time, study-wide ETA."""
        status = collect(queue, self._known_keys(queue))
        eta = f"ETA {format_duration(status.eta_s)}" if status.eta_s is not None and not status.complete else ""
        lines = []
        for lease, verdict in finished:
            levels = lease.user_attrs.get(LEVELS_ATTR) or {}
            config = lease.user_attrs.get(CONFIG_ATTR) or {}
            label = " ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
            acc = f"val_acc {verdict.val_acc:.4f}" if verdict.val_acc is not None else "val_acc   n/a "
            lines.append(f"[{status.done}/{status.total}] {label} seed={config.get('seed')} | {verdict.outcome:<9} "
                         f"{acc} | {verdict.seconds:5.1f}s | {eta}".rstrip())
        return lines

    def idle_message(self, queue: Queue) -> str:
        """What a worker that finds nothing to take says (e.g. one joining a complete study)."""
        states = self.key_status(queue)
        done = sum(s in DONE_STATUSES for s in states.values())
        if done == len(states):
            return f"study {self.spec.name} is already complete ({done}/{done} trials done): nothing to do"
        return f"study {self.spec.name}: nothing to do, no trial waits or runs ({done}/{len(states)} trials done)"

    def status_text(self, queue: Queue) -> str:
        return grid_status_text(collect(queue, self._known_keys(queue)), self.spec.source)
