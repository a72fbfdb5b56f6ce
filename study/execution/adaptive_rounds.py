"""An adaptive study's rounds as queue work: like the confirm stage, but repeated until every target is decided.

Rounds are queue state, never process state:
- round 0 is every config on the start seeds, enqueued like any grid;
- a worker that finds nothing to take and every known trial done takes the study's lock
  (study.core.store_lock.study_lock: a file lock beside a SQLite queue, an advisory lock on PostgreSQL),
  reads the results from MLflow, replays the decisions (study.analysis.sequential: a pure function of the
  results) and records the next round in the queue's study attributes (`adaptive:round:<k>`: its seeds and
  trial keys) before enqueueing its trials, or records `adaptive:finished` (why, and the targets left open);
- every other worker, waiting for work, then finds the new trials queued (or the study finished) and goes on;
  one that joins later learns the rounds from the same attributes;
- a round recorded but not enqueued (its decider died in between) is enqueued by the next one to look; a
  killed run resumes mid-round: its trials are ordinary trials with their own keys, trained once each.
"""

from __future__ import annotations

import time
from typing import Any

from study.analysis.adaptive_targets import AdaptiveAnalysis, adaptive_analysis, design_of, grid_of, targets_of
from study.analysis.chance import failure_rule
from study.analysis.levels import tidy_trials
from study.analysis.runs import trials_frame
from study.analysis.sequential import FUTILITY
from study.analysis.stats.failures import FailureRule
from study.core.status import DONE_STATUSES
from study.core.store_lock import study_lock
from study.core.text import worker_id
from study.execution.grid_source import GridSource
from study.queue.progress import key_states
from study.queue.protocol import Queue
from study.queue.ledger import RunRecord
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec

ROUND_PREFIX = "adaptive:round:"
FINISHED_ATTR = "adaptive:finished"


def source_for(spec: StudySpec, data_dir: str | None = None) -> GridSource:
    """The queue source of an ablation spec: its adaptive rounds when it has `adaptive`, else its grid."""
    from study.execution.arm_stage import source_for as staged_or_grid

    return AdaptiveSource(spec, data_dir) if spec.adaptive is not None else staged_or_grid(spec)


def round_records(queue: Queue) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The rounds recorded so far (1, 2, ...: round 0 is the spec's start seeds) and the finish record."""
    attrs = queue.storage.get_study_system_attrs(queue.study_id)
    rounds = sorted((v for k, v in attrs.items() if k.startswith(ROUND_PREFIX)), key=lambda r: r["round"])
    return rounds, attrs.get(FINISHED_ATTR)


class AdaptiveSource(GridSource):
    """The trials of an adaptive spec: the start seeds, then each round the queue records."""

    later = "rounds where targets are open"

    def __init__(self, spec: StudySpec, data_dir: str | None = None) -> None:
        super().__init__(spec)
        self.every = {t.key: t for t in spec.unique_trials()}  # any trial a round may ask for, by key
        start = set(spec.seeds[:spec.adaptive.start_seeds])
        self.trials = [t for t in self.trials if t.config.seed in start]
        self.keys = [t.key for t in self.trials]
        self.main_keys = list(self.keys)
        self.confirm_known = False  # more rounds may come (no confirm stage: the spec refuses one beside it)
        self.data_dir = data_dir
        self.rounds_known = 0
        self.finished: dict[str, Any] | None = None
        self.rule: FailureRule | None = None
        self.contrasts: list | None = None

    # ------------------------------------------------------------------ what the queue says

    def learn(self, queue: Queue) -> list[Trial]:
        """Adopt the rounds recorded by any process; return the trials that are new to this source."""
        rounds, self.finished = round_records(queue)
        self.confirm_known = self.finished is not None
        fresh: list[Trial] = []
        known = set(self.keys)
        for record in rounds[self.rounds_known:]:
            fresh += [self.every[k] for k in record["keys"] if k in self.every and k not in known]
            known |= set(record["keys"])
        self.rounds_known = len(rounds)
        self.trials += fresh
        self.keys += [t.key for t in fresh]
        return fresh

    def _known_keys(self, queue: Queue) -> list[str]:
        self.learn(queue)
        return self.keys

    def enqueue(self, queue: Queue, record: RunRecord | None = None) -> int:
        self.learn(queue)
        return super().enqueue(queue, record)

    def confirm(self, queue: Queue) -> int:
        """What the grid calls its confirm stage is the next round here (`study run` calls it at start and end)."""
        return self.advance(queue)

    def done(self, queue: Queue) -> bool:
        """No trial waits or runs and no round is due: the study finished, or it cannot go on (a trial failed,
        or MLflow lacks a result the queue has: the next `study run` re-queues it)."""
        if queue.has_work():
            return False
        if self.advance(queue):
            return False
        # advance queued nothing, but another process may have queued the next round while this one waited
        # for the study's lock: without this look, a worker left the study at a round boundary
        return not queue.has_work()

    # ------------------------------------------------------------------ the decision

    def advance(self, queue: Queue) -> int:
        """Under the study's lock: if every known trial is done, decide and queue the next round (or record the
        finish); return how many trials were newly queued."""
        self.learn(queue)
        if self.finished is not None:
            return 0
        with study_lock(queue.url, self.spec.name, "storage"):
            self.learn(queue)  # a process that held the lock before us may have decided already
            if self.finished is not None:
                return 0
            states = key_states(queue.trials(), self.keys)
            lost = [self.every[k] for k, state in states.items() if state == "not queued"]
            if lost:  # recorded by a decider that died before enqueueing them
                return queue.enqueue(self.items(lost))
            if not all(state in DONE_STATUSES for state in states.values()):
                return 0
            analysis = self.analyse()
            replay = analysis.replay
            if replay.pending is not None and replay.pending.index <= self.rounds_known:
                return 0  # a recorded round lacks a result in MLflow that the queue has: `study run` re-queues it
            record = {"round": len(replay.rounds), "decided_by": worker_id(), "at": time.time(),
                      "open": len(replay.open_targets), "decided": len(replay.decisions) - len(replay.open_targets)}
            if replay.finished:
                last = replay.rounds[-1].seeds if replay.rounds else 0
                reason = ("every target decided" if not replay.open_targets else "max_seeds reached"
                          if last >= self.spec.adaptive.max_seeds else
                          "every open target futile (predictive power at max_seeds under "
                          f"{FUTILITY:.0%})")
                self.finished = {**record, "rounds": len(replay.rounds), "reason": reason,
                                 "open_targets": replay.open_targets}
                queue.storage.set_study_system_attr(queue.study_id, FINISHED_ATTR, self.finished)
                return 0
            by_levels = self._by_levels()
            trials = [by_levels[(analysis.grid.labels[c], self.spec.seeds[s])]
                      for c, s in replay.next_trials(analysis.grid)]
            record.update(seeds=replay.pending.seeds, configs=len(replay.pending.configs), keys=[t.key for t in trials])
            queue.storage.set_study_system_attr(queue.study_id, f"{ROUND_PREFIX}{record['round']}", record)
            self.learn(queue)
            return queue.enqueue(self.items(trials))

    def analyse(self) -> AdaptiveAnalysis:
        """The rounds and decisions so far, from MLflow (the record every worker writes before telling the queue)."""
        frame = trials_frame(self.spec.name)
        if not frame.empty:
            frame = frame[frame["trial_key"].isin(set(self.every))].reset_index(drop=True)
        tidy = tidy_trials(frame, self.spec)
        if self.rule is None:
            self.rule = failure_rule(self.spec.base, self.data_dir)
        if self.contrasts is None:
            self.contrasts = targets_of(self.spec, tidy, self.rule,
                                        grid_of(tidy, self.spec, self.rule, self.spec.adaptive.max_seeds))
        return adaptive_analysis(self.spec, tidy, self.rule, self.contrasts)

    def _by_levels(self) -> dict[tuple[tuple[str, ...], int], Trial]:
        """Every trial by (its levels of the factors that vary, its seed): how the analysis grid names them."""
        factors = [f for f, levels in self.spec.factors.items() if len(levels) > 1]
        return {(tuple(t.levels.get(f) for f in factors), t.config.seed): t for t in self.spec.trials()}

    # ------------------------------------------------------------------ what a user reads

    def status_text(self, queue: Queue) -> str:
        text = super().status_text(queue)
        rounds, finished = round_records(queue)
        design = design_of(self.spec)
        seeds = rounds[-1]["seeds"] if rounds else design.start_seeds
        line = (f"adaptive: round {len(rounds)} (up to {seeds} seeds per config, at most {design.max_seeds})")
        if finished is not None:
            line = (f"adaptive: finished after {finished['rounds']} round(s), {finished['reason']}"
                    + (f"; open: {len(finished['open_targets'])} target(s)" if finished["open_targets"] else ""))
        elif rounds:
            line += f"; {rounds[-1]['open']} target(s) open after round {len(rounds) - 1}"
        return text + "\n" + line
