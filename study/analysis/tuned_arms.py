"""Each arm's tuning, decided from its recorded results alone: the plan, the tuned values, their uncertainty.

The same functions run in every worker (to know which tuning trials exist, and once they all have a
result, to enqueue the main trials at the tuned values) and in the report (to know which trials to
expect and to show the choice), so both always agree. With `sampler: grid` every tuning trial is known
up front; with `sampler: tpe` the plan replays each arm's search point by point (study.tuning.arm_sampler
proposes the next point from the earlier ones), stopping at the first point without all its results.

The tuned value of an arm is its point with the best mean final val accuracy over the tuning seeds
(diverged trials without a finite accuracy count as chance, as everywhere in the analysis; fully
trained points before pruned ones; ties go to the earlier point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from study.analysis.stats.divergence import impute_diverged
from study.core.status import TrialStatus
from study.spec.arms import Arm, arms, tuned_spec, tuning, tuning_trials
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.tuning.arm_sampler import propose

PRIMARY = "final_val_accuracy"
NEAR_Z = 1.96  # near-best: within the 95% interval of a difference of two point means


@dataclass
class TuningPlan:
    """The tuning trials known so far: each arm's points (in order) and, per point, its trials."""

    arms: list[Arm]
    points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    trials: dict[str, list[list[Trial]]] = field(default_factory=dict)  # arm -> point -> one per tuning seed
    done: dict[str, bool] = field(default_factory=dict)  # arm -> every point it will have has every result

    @property
    def complete(self) -> bool:
        return all(self.done.values())

    def all_trials(self) -> list[Trial]:
        """Seeds outermost, then arms, then points (a partly done stage covers every arm on the first seed)."""
        flat = [(t.config.seed, a, p, t) for a, arm in enumerate(self.arms)
                for p, point in enumerate(self.trials[arm.label]) for t in point]
        return [t for *_, t in sorted(flat, key=lambda item: item[:3])]

    def arm_keys(self, label: str) -> list[str]:
        return [t.key for point in self.trials[label] for t in point]


def results_by_key(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs indexed by trial key, diverged-without-accuracy at chance (study.analysis.stats.divergence)."""
    if runs.empty:
        return pd.DataFrame(columns=[PRIMARY, "status", "epochs_run"]).rename_axis("trial_key")
    return impute_diverged(runs).drop_duplicates("trial_key", keep="last").set_index("trial_key")


def tuning_plan(spec: StudySpec, runs: pd.DataFrame) -> TuningPlan:
    """Which tuning trials exist given the results in `runs` (a study.analysis.runs.trials_frame)."""
    tune = tuning(spec)
    found = results_by_key(runs)
    plan = TuningPlan(arms=arms(spec))
    for arm in plan.arms:
        plan.points[arm.label], plan.trials[arm.label] = [], []
        if tune.sampler == "grid":
            for point in tune.grid():
                plan.points[arm.label].append(point)
                plan.trials[arm.label].append(tuning_trials(spec, arm, point))
            plan.done[arm.label] = all(t.key in found.index for p in plan.trials[arm.label] for t in p)
            continue
        history: list[tuple[dict[str, Any], float]] = []
        plan.done[arm.label] = True
        while len(history) < tune.trials:
            point = propose(spec.name, arm.label, tune.space, tune.trials, history)
            trials = tuning_trials(spec, arm, point)
            plan.points[arm.label].append(point)
            plan.trials[arm.label].append(trials)
            if not all(t.key in found.index for t in trials):
                plan.done[arm.label] = False
                break
            history.append((point, _mean(found.loc[[t.key for t in trials], PRIMARY])))
    return plan


def _mean(values: pd.Series) -> float:
    x = pd.to_numeric(values, errors="coerce").astype(float).fillna(0.0)
    return float(x.mean())


def tuning_frame(spec: StudySpec, plan: TuningPlan, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished tuning trial: arm, point, tuned values, seed, result, epochs run."""
    found = results_by_key(runs)
    rows = []
    for arm in plan.arms:
        for index, (point, trials) in enumerate(zip(plan.points[arm.label], plan.trials[arm.label])):
            for trial in trials:
                if trial.key not in found.index:
                    continue
                run = found.loc[trial.key]
                rows.append({"arm": arm.label, **{f"level_{f}": lv for f, lv in arm.levels.items()}, "point": index,
                             **point, "seed": trial.config.seed, "trial_key": trial.key, "run_id": run.get("run_id"),
                             "status": run.get("status"), PRIMARY: float(run.get(PRIMARY, math.nan)),
                             "epochs_run": float(run.get("epochs_run", math.nan)),
                             "wall_time_s": float(run.get("wall_time_s", math.nan))})
    return pd.DataFrame(rows)


def point_table(spec: StudySpec, tuned: pd.DataFrame) -> pd.DataFrame:
    """Per arm and point: the tuned values, mean/SD/min/max of val accuracy over the tuning seeds, pruned."""
    fields = list(tuning(spec).fields)
    if tuned.empty:
        return pd.DataFrame(columns=["arm", "point", *fields, "mean", "sd", "low", "high", "n", "pruned"])
    scored = tuned.assign(score=tuned[PRIMARY].fillna(0.0), pruned=tuned["status"].eq(TrialStatus.PRUNED.value))
    table = scored.groupby(["arm", "point", *fields], sort=False).agg(
        mean=("score", "mean"), sd=("score", "std"), low=("score", "min"), high=("score", "max"), n=("score", "size"),
        pruned=("pruned", "any"))
    return table.reset_index()


def choose(points: pd.DataFrame) -> pd.DataFrame:
    """An arm's points ranked: fully trained before pruned, then by mean (desc), ties to the earlier point."""
    order = points.assign(_trained=~points["pruned"], _neg=-points["mean"])
    return order.sort_values(["_trained", "_neg", "point"], ascending=[False, True, True],
                             kind="stable").drop(columns=["_trained", "_neg"])


def decide(spec: StudySpec, points: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each arm's tuned values: its best point (see `choose`)."""
    fields = list(tuning(spec).fields)
    out = {}
    for arm, rows in points.groupby("arm", sort=False):
        best = choose(rows).iloc[0]
        out[str(arm)] = {f: _typed(spec, f, best[f]) for f in fields}
    return out


def _typed(spec: StudySpec, name: str, value: Any) -> Any:
    return int(value) if tuning(spec).space[name].is_int else float(value)


def tuned_values(spec: StudySpec, runs: pd.DataFrame) -> dict[str, dict[str, Any]] | None:
    """Every arm's tuned values, or None while some tuning trial has no result in `runs`."""
    plan = tuning_plan(spec, runs)
    if not plan.complete:
        return None
    return decide(spec, point_table(spec, tuning_frame(spec, plan, runs)))


def resolved(spec: StudySpec, runs: pd.DataFrame) -> StudySpec:
    """The spec at its tuned values once every arm is tuned; unchanged before (or without `tune_each_arm`)."""
    if spec.tune_each_arm is None or spec.tuned is not None:
        return spec
    values = tuned_values(spec, runs)
    return tuned_spec(spec, values) if values is not None else spec


def arm_table(spec: StudySpec, plan: TuningPlan, tuned: pd.DataFrame) -> pd.DataFrame:
    """`tables/tuned_arms.csv`: per arm its tuned value(s), the runner-up, the near-best interval, whether
    the best lies at an end of the range (widen it), whether the curve is flat, and the trials spent."""
    tune = tuning(spec)
    points = point_table(spec, tuned)
    rows = []
    for arm in plan.arms:
        mine = points[points["arm"] == arm.label]
        spent = tuned[tuned["arm"] == arm.label] if not tuned.empty else tuned
        row: dict[str, Any] = {"arm": arm.label, **arm.levels, "points": len(mine), "trials": len(spent),
                               "trial_epochs": int(spent["epochs_run"].fillna(0).sum()) if len(spent) else 0,
                               "complete": plan.done[arm.label]}
        if mine.empty:
            rows.append(row)
            continue
        ranked = choose(mine)
        best = ranked.iloc[0]
        runner = ranked.iloc[1] if len(ranked) > 1 else None
        margin = near_margin(mine, len(tune.seeds))
        near = mine[mine["mean"] >= best["mean"] - margin] if math.isfinite(margin) else mine.loc[[best.name]]
        row.update({"best_val_accuracy": best["mean"], "runner_up_val_accuracy": runner["mean"] if runner is not None
                    else math.nan, "near_margin": margin,
                    "spread": float(mine["mean"].max() - mine["mean"].min())})
        for name, param in tune.space.items():
            row[name] = best[name]
            row[f"runner_up_{name}"] = runner[name] if runner is not None else math.nan
            row[f"near_low_{name}"], row[f"near_high_{name}"] = float(near[name].min()), float(near[name].max())
            row[f"edge_{name}"] = edge(best[name], mine[name], param)
        row["flat"] = bool(row["spread"] <= max(margin if math.isfinite(margin) else 0.0, FLAT_PP))
        rows.append(row)
    return pd.DataFrame(rows)


FLAT_PP = 0.005  # a curve that moves less than 0.5 pp over the whole range is flat


def near_margin(points: pd.DataFrame, seeds: int) -> float:
    """How far below the best a point may be and still be near-best: 1.96 x the SE of a difference of two point
    means, the SD pooled over the arm's points (NaN with one tuning seed: then only the best is near-best)."""
    variances = points["sd"].dropna() ** 2
    if variances.empty or seeds < 2:
        return math.nan
    return float(NEAR_Z * math.sqrt(2 * variances.mean() / seeds))


def edge(best: float, tried: pd.Series, param: Any) -> str:
    """`low`/`high` when the best is the lowest/highest value tried and that value is within one grid step of
    the range's end: the optimum may lie outside the range."""
    values = np.sort(tried.astype(float).unique())
    scale = np.log if param.log else (lambda v: v)
    step = (scale(param.high) - scale(param.low)) / max(len(values) - 1, 1)
    if len(values) < 2:
        return ""
    if best == values[0] and scale(values[0]) - scale(param.low) <= step / 2:
        return "low"
    if best == values[-1] and scale(param.high) - scale(values[-1]) <= step / 2:
        return "high"
    return ""
