"""The trials of an ablation spec as a queue source: enqueued once each by key, taken a group at a time.

Exactly once, on both sides:
- the queue hands a trial to one worker only (study.queue.trial_queue);
- before training, the worker asks MLflow whether the key already has a finished
  run (a worker that died after recording but before telling the queue): if so it
  adopts that result instead of training again;
- just before recording a result FINISHED, it checks it still holds the trial (a
  worker that stalled past the grace period has lost it to another worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from study.config import TrialConfig
from study.core.errors import Interrupted
from study.core.names import (CONFIG_ATTR, DUPLICATE_ATTR, LEVELS_ATTR, NUMBER_TAG, OPTUNA_STUDY_TAG,
                              RECOVERED_ATTR, RUN_ID_ATTR, STATUS_ATTR, STATUS_TAG, WORKER_ATTR)
from study.core.status import DONE_STATUSES, TrialStatus
from study.core.text import format_duration
from study.execution import confirm_stage
from study.execution.sources import TrainingContext, Verdict, objective_value
from study.execution.status_text import grid_status_text
from study.execution.tracked import Recording, run_tracked
from study.queue.progress import collect, key_states
from study.queue.trial_queue import Claim, QueueItem, TrialQueue
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.tracking.runs import finished_trial_run, reap_key_runs
from study.training.executors.registry import group_of, program_of


OBJECTIVE_NAME = "val_accuracy"  # what a grid trial reports to its queue (see objective_value)


class GridSource:
    """The trials of an ablation spec, enqueued once each by key."""

    kind = "ablation"
    keeps_models = True

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

    def confirm(self, queue: TrialQueue) -> int:
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

    def _known_keys(self, queue: TrialQueue) -> list[str]:
        """The spec's keys plus confirm keys already queued by any worker."""
        if self.confirm_known:
            return self.keys
        return self.keys + [k for k in confirm_stage.queued_keys(self.spec, queue, self.main_keys)
                            if k not in set(self.keys)]

    def enqueue(self, queue: TrialQueue, mlflow_done: set[str] | None = None) -> int:
        """Queue the spec's keys that are not waiting, running or complete; with `mlflow_done`,
        also those the queue calls complete but MLflow has no finished run of (MLflow is the record)."""
        if queue.study.metric_names != [OBJECTIVE_NAME]:  # optuna-dashboard's axes: not "Objective 0"
            queue.study.set_metric_names([OBJECTIVE_NAME])
        again: set[str] = set()
        if mlflow_done is not None:
            states = key_states(queue.trials(), self.keys)
            again = {k for k, s in states.items() if s in DONE_STATUSES and k not in mlflow_done}
        return queue.enqueue(self.items(), again=again)

    def key_status(self, queue: TrialQueue) -> dict[str, str]:
        return key_states(queue.trials(), self._known_keys(queue))

    def next(self, queue: TrialQueue, group_size: int) -> list[Claim]:
        """The next group; one whose program this worker already compiled first (two fused workers then
        compile about half the grid's structures each instead of nearly all of them)."""
        def known(group: str | None) -> bool:
            return program_of(group) in self.programs

        claims = queue.claim_group(group_size, prefer=known)
        if not claims and self.confirm(queue):
            claims = queue.claim_group(group_size, prefer=known)
        if claims and claims[0].group is not None:
            self.programs.add(program_of(claims[0].group))
        return claims

    def done(self, queue: TrialQueue) -> bool:
        """No trial waits or runs, and the confirm stage is not due (it is due once every main trial is done)."""
        if queue.has_work():
            return False
        return self.confirm_known or not confirm_stage.main_done(queue, self.main_keys) or not self.confirm(queue)

    def run(self, claims: Sequence[Claim], ctx: TrainingContext) -> list[Verdict]:
        """Train the claimed trials in one executor call; adopt results MLflow already holds."""
        queue = ctx.queue
        verdicts: dict[int, Verdict] = {}
        todo: list[tuple[int, Claim, Trial]] = []
        for index, claim in enumerate(claims):
            config = TrialConfig(**claim.user_attrs[CONFIG_ATTR])
            if config.key() != claim.key:
                queue.fail(claim, {STATUS_ATTR: TrialStatus.FAILED.value,
                                   "error": f"config hashes to {config.key()}, not {claim.key}: queued by another "
                                            "version of the code"})
                verdicts[index] = Verdict(TrialStatus.FAILED)
                continue
            queue.set_attrs(claim, {WORKER_ATTR: ctx.worker})
            recorded = finished_trial_run(ctx.exp_id, claim.key)
            if recorded is not None:
                verdicts[index] = self._adopt(claim, recorded, queue)
                continue
            reap_key_runs(ctx.exp_id, claim.key, "its worker lost the trial (killed or stalled); re-queued")
            todo.append((index, claim, Trial(config, dict(claim.user_attrs.get(LEVELS_ATTR, {})))))
        if todo:
            if ctx.stop.is_set():
                raise Interrupted()
            ctx.open_parent()
            executor = ctx.executor(todo[0][2].config.executor)
            recording = Recording(
                tags=[{OPTUNA_STUDY_TAG: self.spec.name, NUMBER_TAG: str(claim.number)} for _, claim, _ in todo],
                on_start=lambda i, run_id: queue.set_attrs(todo[i][1], {RUN_ID_ATTR: run_id}),
                still_ours=lambda i: queue.holds(todo[i][1]))
            outcomes = run_tracked([trial for _, _, trial in todo], self.spec.name, ctx.exp_id, ctx.splits,
                                   ctx.settings, executor, recording, stop=ctx.stop.event)
            for (index, claim, _), outcome in zip(todo, outcomes):
                if outcome.status in DONE_STATUSES:
                    queue.complete(claim, objective_value(outcome.val_accuracy), {STATUS_ATTR: outcome.status})
                elif outcome.status == TrialStatus.FAILED:
                    queue.fail(claim, {STATUS_ATTR: TrialStatus.FAILED.value,
                                       "error": outcome.error.splitlines()[0][:500]})
                verdicts[index] = Verdict(outcome.status, outcome.val_accuracy, outcome.seconds,
                                          error=outcome.error.splitlines()[0][:300] if outcome.error else "")
        return [verdicts[i] for i in range(len(claims))]

    def describe(self, queue: TrialQueue, finished: Sequence[tuple[Claim, Verdict]]) -> list[str]:
        """One line per trial: study-wide done/total, the trial, its outcome, time, study-wide ETA."""
        status = collect(queue, self._known_keys(queue))
        eta = f"ETA {format_duration(status.eta_s)}" if status.eta_s is not None and not status.complete else ""
        lines = []
        for claim, verdict in finished:
            levels = claim.user_attrs.get(LEVELS_ATTR) or {}
            config = claim.user_attrs.get(CONFIG_ATTR) or {}
            label = " ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
            acc = f"val_acc {verdict.val_acc:.4f}" if verdict.val_acc is not None else "val_acc   n/a "
            line = (f"[{status.done}/{status.total}] {label} seed={config.get('seed')} | {verdict.outcome:<9} "
                    f"{acc} | {verdict.seconds:5.1f}s | {eta}".rstrip())
            if verdict.error:  # a failed trial says why (a command: its exit status and last line)
                line += (" " if line.endswith("|") else " | ") + verdict.error
            lines.append(line)
        return lines

    def idle_message(self, queue: TrialQueue) -> str:
        """What a worker that finds nothing to take says (e.g. one joining a complete study)."""
        states = self.key_status(queue)
        done = sum(s in DONE_STATUSES for s in states.values())
        if done == len(states):
            return f"study {self.spec.name} is already complete ({done}/{done} trials done): nothing to do"
        return f"study {self.spec.name}: nothing to do, no trial waits or runs ({done}/{len(states)} trials done)"

    def status_text(self, queue: TrialQueue) -> str:
        return grid_status_text(collect(queue, self._known_keys(queue)), self.spec.source)

    @staticmethod
    def _adopt(claim: Claim, recorded: Any, queue: TrialQueue) -> Verdict:
        """The key already has a finished MLflow run: tell the queue its result, train nothing."""
        done_sibling = next((t for t in queue.siblings(claim) if t.state.name == "COMPLETE"), None)
        if done_sibling is not None:
            queue.fail(claim, {STATUS_ATTR: TrialStatus.DUPLICATE.value, DUPLICATE_ATTR: done_sibling.number})
            return Verdict(TrialStatus.DUPLICATE)
        val_acc = recorded.data.metrics.get("final_val_accuracy")
        status = recorded.data.tags.get(STATUS_TAG, TrialStatus.COMPLETED.value)
        queue.complete(claim, objective_value(val_acc), {STATUS_ATTR: status, RUN_ID_ATTR: recorded.info.run_id,
                                                         RECOVERED_ATTR: True})
        return Verdict(TrialStatus.RECOVERED, val_acc)
