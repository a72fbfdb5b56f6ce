"""Each arm's tuning decided from recorded results alone (planted numbers): the plan, the choice, its
uncertainty, the range's edge, flat curves, TPE's replayed search, and the batch-norm learning-rate claim."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.fair import analyse_fair
from study.lesson.rate_claim import rate_claim
from study.analysis.tuned_arms import arm_table, decide, point_table, resolved, tuned_values, tuning_frame, tuning_plan
from study.spec.arms import arm_for
from study.spec.study_spec import parse_spec

RAW = {
    "name": "planted",
    "epochs": 2,
    "seeds": [0, 1],
    "base": {"learning_rate": 0.05},
    "factors": {"batch_norm": [False, True], "optimizer": ["sgd", "adam"]},
    "tune_each_arm": {"learning_rate": {"low": 1.0e-4, "high": 1.0, "log": True}, "trials": 5, "seeds": [100, 101]},
}


def runs_for(trials, accuracy) -> pd.DataFrame:
    """A trials_frame as MLflow would give it: `accuracy(trial)` -> (val accuracy, status)."""
    rows = []
    for i, trial in enumerate(trials):
        value, status = accuracy(trial)
        rows.append({"run_id": f"r{i}", "trial_key": trial.key, "status": status, "seed": trial.config.seed,
                     "final_val_accuracy": value, "epochs_run": 2 if status != "pruned" else 1, "wall_time_s": 1.0,
                     **trial.config.values()})
    return pd.DataFrame(rows)


def peak(best_lr: float, width: float = 1.0):
    """Accuracy peaking at `best_lr` (log scale), a little seed noise."""
    def accuracy(trial):
        c = trial.config
        distance = abs(math.log10(c.learning_rate) - math.log10(best_lr)) / width
        return 0.95 - 0.1 * distance ** 2 + 0.001 * (c.seed - 100), "completed"
    return accuracy


def test_the_best_point_is_chosen_only_once_every_result_is_in():
    spec = parse_spec(RAW, source="x.yaml")
    plan = tuning_plan(spec, pd.DataFrame())
    trials = plan.all_trials()
    assert len(trials) == 4 * 5 * 2 and not plan.complete
    assert [t.config.seed for t in trials[:20]] == [100] * 20, "seeds outermost"
    runs = runs_for(trials, peak(0.01))
    assert tuned_values(spec, runs.iloc[1:]) is None  # one tuning trial missing: nothing is decided
    values = tuned_values(spec, runs)
    assert values == {arm: {"learning_rate": 0.01} for arm in values} and len(values) == 4
    at = resolved(spec, runs)
    assert {t.config.learning_rate for t in at.unique_trials()} == {0.01}
    assert resolved(spec, runs.iloc[1:]) is spec


def test_ties_go_to_the_earlier_point_and_pruned_points_rank_after_trained_ones():
    spec = parse_spec(RAW, source="x.yaml")
    plan = tuning_plan(spec, pd.DataFrame())

    def accuracy(trial):
        lr = trial.config.learning_rate
        if lr == 1.0:
            return 0.99, "pruned"  # stopped early at a high partial value: still not preferred
        return (0.9, "completed") if lr in (0.01, 0.1) else (0.5, "completed")

    runs = runs_for(plan.all_trials(), accuracy)
    points = point_table(spec, tuning_frame(spec, plan, runs))
    chosen = decide(spec, points)
    assert len(chosen) == 4 and all(v == {"learning_rate": 0.01} for v in chosen.values())


def test_uncertainty_edge_and_flat_curves_are_reported():
    spec = parse_spec(RAW, source="x.yaml")
    plan = tuning_plan(spec, pd.DataFrame())

    def accuracy(trial):
        c = trial.config
        if c.optimizer == "adam" and not c.batch_norm:
            return 0.90 + 0.0001 * (c.seed - 100), "completed"  # flat
        if c.optimizer == "adam":
            return 0.8 + 0.05 * math.log10(c.learning_rate) + 0.002 * (c.seed - 100), "completed"  # best at 1.0
        return peak(0.01)(trial)

    runs = runs_for(plan.all_trials(), accuracy)
    table = arm_table(spec, plan, tuning_frame(spec, plan, runs)).set_index("arm")
    sgd = table.loc["batch_norm=false, optimizer=sgd"]
    assert sgd["learning_rate"] == 0.01 and sgd["runner_up_learning_rate"] in (0.001, 0.1)
    assert sgd["near_low_learning_rate"] <= 0.01 <= sgd["near_high_learning_rate"] and sgd["edge_learning_rate"] == ""
    assert not sgd["flat"] and sgd["trials"] == 10 and sgd["trial_epochs"] == 20
    assert table.loc["batch_norm=true, optimizer=adam", "edge_learning_rate"] == "high"
    assert table.loc["batch_norm=false, optimizer=adam", "flat"]


def test_batch_norm_allows_a_higher_rate_is_read_from_the_tuned_arms():
    spec = parse_spec(RAW, source="x.yaml")
    plan = tuning_plan(spec, pd.DataFrame())

    def accuracy(trial):
        return peak(0.1 if trial.config.batch_norm else 0.001, width=0.5)(trial)

    runs = runs_for(plan.all_trials(), accuracy)
    fair = analyse_fair(spec, runs, {"batch_norm": ["false", "true"], "optimizer": ["sgd", "adam"]}, None)
    row = rate_claim(spec, fair, {"batch_norm": ["false", "true"]}).iloc[0]
    assert row["verdict"] == "supported", row["why"]
    assert "2 higher, 0 lower" in row["why"] and "100x" in row["why"]
    untuned = parse_spec({k: v for k, v in RAW.items() if k != "tune_each_arm"}, source="x.yaml")
    assert rate_claim(untuned, None, {"batch_norm": ["false", "true"]}).iloc[0]["verdict"] == "not testable here"
    assert fair.cost["tune"]["trials"] == 40 and fair.cost["planned_trials"] == 40


def test_tpe_replays_each_arms_search_point_by_point():
    raw = {**RAW, "tune_each_arm": {**RAW["tune_each_arm"], "sampler": "tpe", "trials": 4}}
    spec = parse_spec(raw, source="x.yaml")
    first = tuning_plan(spec, pd.DataFrame())
    assert all(len(points) == 1 for points in first.points.values()), "one point per arm until it has results"
    assert first.points == tuning_plan(spec, pd.DataFrame()).points, "proposals are a pure function"
    runs = pd.DataFrame()
    for _ in range(4):
        plan = tuning_plan(spec, runs)
        runs = runs_for(plan.all_trials(), peak(0.003))
    plan = tuning_plan(spec, runs)
    assert plan.complete and all(len(points) == 4 for points in plan.points.values())
    values = tuned_values(spec, runs)
    for arm in plan.arms:
        tried = [p["learning_rate"] for p in plan.points[arm.label]]
        assert values[arm.label]["learning_rate"] == min(tried, key=lambda lr: abs(math.log10(lr / 0.003)))
    assert arm_for(spec, plan.arms[0].config).label == plan.arms[0].label
