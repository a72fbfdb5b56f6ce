"""A `tune_each_arm` study's comparison both ways: each effect at the spec's fixed values and at each arm's
tuned values, each arm's tuning (sensitivity, choice, uncertainty), what the tuning cost, and the claim
"batch normalisation allows a higher learning rate", which only tuned arms can test (tables only, no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from study.analysis.levels import tidy_trials
from study.analysis.stats.blocks import block_effects
from study.analysis.stats.divergence import impute_diverged
from study.analysis.tuned_arms import (PRIMARY, TuningPlan, arm_table, point_table, tuning_frame, tuning_plan)
from study.spec.arms import arms as arms_of
from study.spec.arms import fixed_trials, tuning
from study.spec.study_spec import StudySpec

EFFECT_KEYS = ["factor", "level", "reference"]


@dataclass
class FairAnalysis:
    plan: TuningPlan
    tuning: pd.DataFrame  # one row per finished tuning trial (study.analysis.tuned_arms.tuning_frame)
    points: pd.DataFrame  # per arm and point: mean/SD over the tuning seeds
    arms: pd.DataFrame  # tables/tuned_arms.csv
    tuned: bool  # whether every arm is tuned (the main analysis then reads the tuned trials)
    fixed: pd.DataFrame = field(default_factory=pd.DataFrame)  # the design at the fixed values, tidy
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)  # tables/fixed_vs_tuned_effects.csv
    cost: dict = field(default_factory=dict)


def analyse_fair(spec: StudySpec, runs: pd.DataFrame, factor_levels: dict[str, list[str]],
                 tuned_effects: pd.DataFrame | None) -> FairAnalysis:
    """`spec`: the study's spec (tuned or not); `runs`: every finished trial run (trials_frame); `factor_levels`
    and `tuned_effects`: the main analysis' (block effects on val accuracy, None before the main trials)."""
    untuned = replace(spec, tuned=None)
    plan = tuning_plan(untuned, runs)
    tuned_rows = tuning_frame(untuned, plan, runs)
    result = FairAnalysis(plan=plan, tuning=tuned_rows, points=point_table(untuned, tuned_rows),
                          arms=arm_table(untuned, plan, tuned_rows), tuned=spec.tuned is not None)
    keys = {t.key for t in fixed_trials(untuned)}
    fixed = runs[runs["trial_key"].isin(keys)] if not runs.empty else runs
    if not fixed.empty:
        result.fixed = impute_diverged(tidy_trials(fixed.reset_index(drop=True), untuned))
    fixed_effects = (block_effects(result.fixed, factor_levels, PRIMARY) if factor_levels and not result.fixed.empty
                     else pd.DataFrame())
    result.comparison = compare_effects(fixed_effects, tuned_effects if result.tuned else None)
    result.cost = tuning_cost(spec, runs, tuned_rows, keys)
    return result


def compare_effects(fixed: pd.DataFrame, tuned: pd.DataFrame | None) -> pd.DataFrame:
    """Each effect at the fixed values and at the tuned values side by side, and how it moved."""
    columns = ["diff", "ci_low", "ci_high", "verdict", "blocks", "unit"]
    sides = []
    for name, table in (("fixed", fixed), ("tuned", tuned)):
        if table is not None and not table.empty:
            sides.append(table[EFFECT_KEYS + columns].rename(columns={c: f"{name}_{c}" for c in columns}))
    if not sides:
        return pd.DataFrame()
    out = sides[0] if len(sides) == 1 else sides[0].merge(sides[1], on=EFFECT_KEYS, how="outer", sort=False)
    if {"fixed_diff", "tuned_diff"} <= set(out):
        out["change"] = out["tuned_diff"] - out["fixed_diff"]
        out["sign_flips"] = (out["fixed_diff"] * out["tuned_diff"]) < 0
        out["verdict_changes"] = out["fixed_verdict"] != out["tuned_verdict"]
    return out


def tuning_cost(spec: StudySpec, runs: pd.DataFrame, tuned_rows: pd.DataFrame, fixed_keys: set[str]) -> dict:
    """Trials, trial-epochs and training seconds of the tuning stage, beside the study's other stages."""
    def spent(frame: pd.DataFrame) -> dict:
        if frame.empty:
            return {"trials": 0, "trial_epochs": 0, "seconds": 0.0}
        return {"trials": int(len(frame)), "trial_epochs": int(frame["epochs_run"].fillna(0).sum()),
                "seconds": float(frame["wall_time_s"].fillna(0).sum())}

    tuning_keys = set(tuned_rows["trial_key"]) if not tuned_rows.empty else set()
    main_keys = {t.key for t in spec.unique_trials()} if spec.tuned is not None else set()
    others = runs[~runs["trial_key"].isin(tuning_keys)] if not runs.empty else runs
    return {"tune": spent(tuned_rows), "fixed": spent(others[others["trial_key"].isin(fixed_keys)] if len(others)
                                                      else others),
            "main": spent(others[others["trial_key"].isin(main_keys)] if len(others) else others),
            "arms": len(tuned_rows["arm"].unique()) if not tuned_rows.empty else 0,
            "planned_trials": len(tuning(spec).seeds) * tuning(spec).trials * len(arms_of(replace(spec, tuned=None)))}
