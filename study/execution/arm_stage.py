"""A `tune_each_arm` study as queue work: tuning trials first, then the main trials at each arm's tuned values.

The same pattern as the confirm stage (study.execution.confirm_stage): the stages are ordinary queue
trials with their own keys, and what a later stage holds is a pure function of the earlier stage's
results in MLflow (study.analysis.tuned_arms), so every worker reaches the same trials and the queue
enqueues each key once.
- stage `tune`: each arm's tuning trials (its points x the tuning seeds). A grid is known up front; a
  TPE search adds an arm's next point once its previous point has every result.
- stage `fixed` (with `compare_fixed`): the design at the spec's fixed values, for the side-by-side
  report; known up front, needed by nothing.
- stage `main`: once every arm is tuned, the first worker that runs out of work decides the tuned
  values, writes each arm's search as an Optuna study (`<study>/arm/<arm>`, for optuna-dashboard) and
  enqueues the design at those values on the study's seeds.
- stage `confirm`: as in any study, once every main trial is done (GridSource.confirm on the tuned spec).
Each trial's run is tagged with its stage and arm. Resume, exactly-once, workers and Ray are the
GridSource's: this class only changes which keys exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from study.analysis.runs import epoch_curves, trials_frame
from study.analysis.tuned_arms import (
    PRIMARY,
    TuningPlan,
    decide,
    point_table,
    tuning_frame,
    tuning_plan,
)
from study.core.names import ARM_TAG, CONFIG_ATTR, KEY_ATTR, STAGE_TAG, TAGS_ATTR
from study.core.store_lock import schema_lock
from study.execution.confirm_stage import main_done
from study.execution.grid_source import GridSource
from study.execution.sources import TrainingContext, Verdict
from study.queue.progress import key_states
from study.queue.protocol import Queue
from study.queue.records import Lease, QueueItem
from study.queue.trial_queue import TrialQueue
from study.spec.arms import (
    STAGE_CONFIRM,
    STAGE_FIXED,
    STAGE_MAIN,
    STAGE_TUNE,
    arm_for,
    fixed_trials,
    tuned_spec,
    tuning,
)
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.training.executors.base import TrialHooks
from study.training.executors.registry import group_of
from study.tuning.arm_sampler import MedianRule, startup_trials
from study.tuning.arm_studies import ArmPoint, write_arm_studies


def source_for(spec: StudySpec) -> GridSource:
    """The queue source of an ablation spec: staged when it tunes each arm."""
    return ArmSource(spec) if spec.tune_each_arm is not None else GridSource(spec)


class ArmSource(GridSource):
    """The trials of a `tune_each_arm` spec, stage by stage (see the module docstring)."""

    later = "the main trials at each arm's tuned values"

    def __init__(self, spec: StudySpec) -> None:
        super().__init__(spec)
        self.untuned = spec
        self.stages: dict[str, tuple[str, str]] = {}  # key -> (stage, arm)
        self.plan = tuning_plan(spec, pd.DataFrame())  # a grid's every trial; a TPE search's first points
        fixed = fixed_trials(spec)
        self.trials, self.keys = [], []
        self._add(self.plan.all_trials(), STAGE_TUNE)
        self._add(fixed, STAGE_FIXED)
        self.main_keys = self._tuning_keys()  # what gates the next stage
        self.confirm_known = False
        self.tuned = False

    # ------------------------------------------------------------------ stages

    def _add(self, trials: list[Trial], stage: str) -> list[Trial]:
        """Record new trials of a stage (their tags follow them into the queue); return the new ones."""
        fresh = []
        for trial in trials:
            if trial.key in self.stages:
                continue
            self.stages[trial.key] = (stage, arm_for(self.untuned, trial.config).label)
            self.trials.append(trial)
            self.keys.append(trial.key)
            fresh.append(trial)
        return fresh

    def _tuning_keys(self) -> list[str]:
        return [t.key for t in self.plan.all_trials()]

    def items(self, trials: list[Trial] | None = None) -> list[QueueItem]:
        out = []
        for trial in self.trials if trials is None else trials:
            stage, arm = self.stages.get(trial.key) or (STAGE_CONFIRM, arm_for(self.untuned, trial.config).label)
            out.append(QueueItem(key=trial.key, config=trial.config.as_dict(), levels=dict(trial.levels),
                                 group=group_of(trial.config), tags={STAGE_TAG: stage, ARM_TAG: arm}))
        return out

    def confirm(self, queue: Queue) -> int:
        """Advance the stages (called whenever a worker finds nothing to take); return how many trials were
        newly queued. Tuning: new TPE points; once every arm is tuned, the main trials; then the confirm stage."""
        if self.confirm_known:
            return 0
        if not self.tuned:
            added = self._advance_tuning(queue)
            if not self.tuned or added:
                return added
        return super().confirm(queue)

    def _advance_tuning(self, queue: Queue) -> int:
        states = key_states(queue.trials(), self._tuning_keys())
        ready = [a.label for a in self.plan.arms if not self.plan.done[a.label]
                 and all(states[k] in ("completed", "diverged") for k in self.plan.arm_keys(a.label))]
        if not ready:
            return 0
        runs = trials_frame(self.untuned.name)  # MLflow is the record every decision reads
        self.plan = tuning_plan(self.untuned, runs)
        fresh = self._add(self.plan.all_trials(), STAGE_TUNE)
        self.main_keys = self._tuning_keys()
        added = queue.enqueue(self.items(fresh)) if fresh else 0
        if not self.plan.complete:
            return added
        return added + self._start_main(queue, runs)

    def _start_main(self, queue: TrialQueue, runs: pd.DataFrame) -> int:
        """Every arm is tuned: decide, show each arm's search in Optuna, queue the design at the tuned values."""
        tuned = tuning_frame(self.untuned, self.plan, runs)
        points = point_table(self.untuned, tuned)
        values = decide(self.untuned, points)
        with schema_lock(queue.url, "storage"):  # workers deciding at once: the second finds every point there
            write_arm_studies(queue.storage, self.untuned.name, tuning(self.untuned).space,
                              arm_points(self.plan, tuned, points), values)
        self.spec = tuned_spec(self.untuned, values)  # GridSource.confirm reads the tuned spec from here on
        main = self.spec.unique_trials()
        fresh = self._add(main, STAGE_MAIN)
        self.main_keys = [t.key for t in main]
        self.tuned = True
        if self.spec.confirm is None:
            self.confirm_known = True
        return queue.enqueue(self.items(fresh))

    def done(self, queue: Queue) -> bool:
        """Nothing waits or runs and no stage can start (a stage waits for results MLflow lacks: rerun `study run`)."""
        if queue.has_work():
            return False
        if self.confirm_known:
            return True
        if not self.tuned and not main_done(queue, self._tuning_keys()):
            return self.confirm(queue) == 0
        return super().done(queue)

    def _known_keys(self, queue: Queue) -> list[str]:
        """This worker's keys plus those of later stages that other workers queued."""
        known = set(self.keys)
        extra = [t.user_attrs[KEY_ATTR] for t in queue.trials()
                 if TAGS_ATTR in t.user_attrs and t.user_attrs.get(KEY_ATTR) not in known]
        return self.keys + list(dict.fromkeys(extra))

    # ------------------------------------------------------------------ training

    def hooks(self, leases: Sequence[Lease], ctx: TrainingContext) -> list[TrialHooks] | None:
        """TPE tuning trials are pruned by the median of their arm's earlier curves on the same seed."""
        if tuning(self.untuned).sampler != "tpe":
            return None
        if not any(_stage(c) == STAGE_TUNE for c in leases):
            return None
        runs = trials_frame(self.untuned.name)
        by_key = runs.set_index("trial_key")["run_id"] if not runs.empty else pd.Series(dtype=str)
        out = []
        for lease in leases:
            earlier = self._earlier_runs(lease, by_key) if _stage(lease) == STAGE_TUNE else []
            if not earlier:
                out.append(TrialHooks())
                continue
            curves = epoch_curves(earlier, ("val_accuracy",))
            history = [dict(zip(c["epoch"], c["value"])) for _, c in curves.groupby("run_id")]
            out.append(TrialHooks(should_stop=MedianRule(history, startup_trials(tuning(self.untuned).trials))))
        return out

    def _earlier_runs(self, lease: Lease, by_key: pd.Series) -> list[str]:
        """Run ids of the arm's earlier points on this lease's tuning seed."""
        arm = lease.user_attrs.get(TAGS_ATTR, {}).get(ARM_TAG)
        seed = (lease.user_attrs.get(CONFIG_ATTR) or {}).get("seed")
        ids = []
        for point in self.plan.trials.get(arm, []):
            if any(t.key == lease.key for t in point):
                break
            ids += [str(by_key[t.key]) for t in point if t.config.seed == seed and t.key in by_key.index]
        return ids

    def describe(self, queue: Queue, finished: Sequence[tuple[Lease, Verdict]]) -> list[str]:
        """The grid's lines, each with its stage (and a tuning trial's values)."""
        lines = super().describe(queue, finished)
        space = tuning(self.untuned).fields
        out = []
        for line, (lease, _) in zip(lines, finished):
            config = lease.user_attrs.get(CONFIG_ATTR) or {}
            values = " ".join(f"{f}={config.get(f, dict(config.get('hparams', [])).get(f))}" for f in space)
            count, _, rest = line.partition("] ")
            out.append(f"{count}] {_stage(lease)} {values} | {rest}")
        return out


def _stage(lease: Lease) -> str:
    return lease.user_attrs.get(TAGS_ATTR, {}).get(STAGE_TAG, "")


def arm_points(plan: TuningPlan, tuned: pd.DataFrame, points: pd.DataFrame) -> dict[str, list[ArmPoint]]:
    """Each arm's points with their results, as the arm's Optuna study shows them."""
    out: dict[str, list[ArmPoint]] = {}
    for arm in plan.arms:
        rows = []
        for index, (point, trials) in enumerate(zip(plan.points[arm.label], plan.trials[arm.label])):
            mine = points[(points["arm"] == arm.label) & (points["point"] == index)]
            if mine.empty:
                continue
            seeds = tuned[(tuned["arm"] == arm.label) & (tuned["point"] == index)]
            per_seed = {int(s): (float(v) if pd.notna(v) else None) for s, v in zip(seeds["seed"], seeds[PRIMARY])}
            rows.append(ArmPoint(index=index, params=point, value=float(mine["mean"].iloc[0]), per_seed=per_seed,
                                 keys=tuple(t.key for t in trials), pruned=bool(mine["pruned"].iloc[0])))
        out[arm.label] = rows
    return out
