"""`tune_each_arm`: every bad key is refused with one line naming it; arms, tuning trials and the tuned spec
are pure functions of the spec."""

from __future__ import annotations

import pytest

from study.core.errors import SpecError
from study.spec.arms import arm_for, arms, fixed_trials, tuned_spec, tuning_trials
from study.spec.study_spec import parse_spec
from tests.conftest import run_cli, write_spec

GOOD = {
    "name": "fair",
    "epochs": 3,
    "seeds": [0, 1],
    "base": {"learning_rate": 0.05, "warmup_epochs": 1},
    "factors": {"optimizer": ["sgd", "adam"], "batch_norm": [False, True], "schedule": ["constant",
                                                                                        "warmup_cosine_corrected"]},
    "confirm": {"top_k": 1, "seeds": [7]},
    "tune_each_arm": {"learning_rate": {"low": 1.0e-4, "high": 1.0, "log": True}, "trials": 8, "seeds": [100, 101]},
}


def tuned(**changes):
    section = {**GOOD["tune_each_arm"], **changes}
    return {**GOOD, "tune_each_arm": {k: v for k, v in section.items() if v is not ...}}


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({**GOOD, "tune_each_arm": [1]}, "tune_each_arm", ["mapping", "learning_rate"]),
        (tuned(learning_rate=...), "tune_each_arm", ["names no field to tune"]),
        (tuned(lr={"low": 0.1, "high": 1.0}), "tune_each_arm.lr", ["unknown key", "trials, seeds, sampler, arms",
                                                                   "dropout, learning_rate"]),
        (tuned(optimizer={"low": 0.1, "high": 1.0}), "tune_each_arm.optimizer", ["is not numeric"]),
        (tuned(seed={"low": 0, "high": 3}), "tune_each_arm.seed", ["unknown key"]),
        (tuned(learning_rate={"low": 0.1}), "tune_each_arm.learning_rate.high", ["is required"]),
        (tuned(learning_rate={"low": 1.0, "high": 0.1}), "tune_each_arm.learning_rate", ["inverted range"]),
        (tuned(learning_rate={"low": 0.0, "high": 0.1}), "tune_each_arm.learning_rate.low", ["learning_rate > 0"]),
        (tuned(learning_rate={"low": "1e-4", "high": 0.1}), "tune_each_arm.learning_rate.low", ["write 1.0e-4"]),
        (tuned(learning_rate={"low": 0.1, "high": 1.0, "log": "yes"}), "tune_each_arm.learning_rate.log",
         ["boolean"]),
        (tuned(learning_rate={"low": 0.1, "high": 1.0, "scale": "log"}), "tune_each_arm.learning_rate.scale",
         ["unknown key", "low, high, log, step"]),
        (tuned(dropout={"low": 0.0, "high": 1.5}), "tune_each_arm.dropout.high", ["0 <= dropout < 1"]),
        (tuned(trials=1), "tune_each_arm.trials", ["integer >= 2"]),
        (tuned(trials=2.5), "tune_each_arm.trials", ["integer >= 2"]),
        (tuned(dropout={"low": 0.0, "high": 0.5}), "tune_each_arm.trials", ["8 is not a power 2", "e.g. 9",
                                                                            "sampler: tpe"]),
        (tuned(seeds=...), "tune_each_arm.seeds", ["is required"]),
        (tuned(seeds=[]), "tune_each_arm.seeds", ["non-empty list"]),
        (tuned(seeds=[100, 100]), "tune_each_arm.seeds", ["duplicates"]),
        (tuned(seeds=[1, 100]), "tune_each_arm.seeds", ["[1] repeat seeds [0, 1]", "must be new"]),
        (tuned(seeds=[7, 100]), "tune_each_arm.seeds", ["[7] repeat confirm.seeds [7]"]),
        (tuned(sampler="random"), "tune_each_arm.sampler", ["'random' is not allowed", "grid, tpe"]),
        (tuned(arms="optimizer"), "tune_each_arm.arms", ["non-empty list of factors"]),
        (tuned(arms=["init"]), "tune_each_arm.arms[0]", ["'init' is not a factor of the design",
                                                         "optimizer, batch_norm, schedule"]),
        (tuned(arms=["optimizer", "optimizer"]), "tune_each_arm.arms", ["repeats a factor"]),
        (tuned(compare_fixed="no"), "tune_each_arm.compare_fixed", ["boolean"]),
        (tuned(warmup_epochs={"low": 1, "high": 3}, trials=9), "tune_each_arm",
         ["epochs > warmup_epochs", "warmup_epochs=3", "warmup_cosine_corrected"]),
        ({**tuned(), "factors": {**GOOD["factors"], "learning_rate": [0.01, 0.1]}}, "tune_each_arm.learning_rate",
         ["is also a factor of the design (factors.learning_rate)"]),
        ({**tuned(), "factors": {"optimizer": ["sgd", {"adam": {"optimizer": "adam", "learning_rate": 0.001}}]}},
         "tune_each_arm.learning_rate", ["is set by level 'adam' of factors.optimizer"]),
    ],
)
def test_bad_tune_each_arm_is_refused_naming_the_key(raw, key, words):
    with pytest.raises(SpecError) as err:
        parse_spec(raw, source="ablations/bad.yaml")
    message = str(err.value)
    assert message.startswith(f"ablations/bad.yaml: {key}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_a_bad_section_exits_2_on_the_command_line(tmp_path):
    spec = write_spec(tmp_path / "bad.yaml", "name: bad\nseeds: [0]\nfactors: {optimizer: [sgd, adam]}\n"
                                             "tune_each_arm: {learning_rate: {low: 1.0e-3, high: 1.0}, seeds: [0]}\n")
    result = run_cli("run", str(spec), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "bad.yaml: tune_each_arm.seeds: [0] repeat seeds [0]; tuning seeds must be new, so the values are chosen "
        "on data the comparison does not use")


def test_every_config_is_an_arm_by_default_and_its_points_form_a_log_grid():
    spec = parse_spec(tuned(), source="x.yaml")
    found = arms(spec)
    assert len(found) == 8 and found[0].label == "optimizer=sgd, batch_norm=false, schedule=constant"
    points = spec.tune_each_arm.grid()
    assert [p["learning_rate"] for p in points][:3] == [1.0e-4, 0.000372759, 0.00138950] and points[-1] == {
        "learning_rate": 1.0}
    trials = tuning_trials(spec, found[0], points[0])
    assert [t.config.seed for t in trials] == [100, 101] and trials[0].config.learning_rate == 1.0e-4
    assert len(fixed_trials(spec)) == 16 and {t.config.learning_rate for t in fixed_trials(spec)} == {0.05}


def test_named_arms_share_their_values_across_the_other_factors():
    spec = parse_spec(tuned(arms=["optimizer", "batch_norm"]), source="x.yaml")
    found = arms(spec)
    assert [a.label for a in found] == ["optimizer=sgd, batch_norm=false", "optimizer=sgd, batch_norm=true",
                                        "optimizer=adam, batch_norm=false", "optimizer=adam, batch_norm=true"]
    assert found[2].config.schedule == "constant" and found[2].config.optimizer == "adam"  # the rest at its base
    values = {a.label: {"learning_rate": 0.001 * (i + 1)} for i, a in enumerate(found)}
    at = tuned_spec(spec, values)
    for trial in at.unique_trials():
        assert trial.config.learning_rate == values[arm_for(spec, trial.config).label]["learning_rate"]
    assert len(at.unique_trials()) == 16 and at.seeds == spec.seeds
    assert {t.key for t in at.unique_trials()}.isdisjoint({t.key for t in spec.unique_trials()})
    assert spec.unique_trials() == parse_spec(tuned(arms=["optimizer", "batch_norm"]), "x.yaml").unique_trials()


def test_shipped_fair_study_is_valid():
    from study.spec.study_spec import load_spec

    spec = load_spec("ablations/lesson_fair.yaml")
    assert spec.tune_each_arm is not None and spec.base.executor == "fused"
    assert set(spec.factors) == {"activation", "batch_norm", "optimizer", "schedule"}
    assert not set(spec.tune_each_arm.seeds) & set(spec.seeds)
