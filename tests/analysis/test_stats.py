"""Statistics on synthetic factorial studies with planted effects (no Keras, no MLflow)."""

from __future__ import annotations

import gc
import math

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.blocks import block_effects
from study.analysis.stats.configs import config_summary
from study.analysis.stats.curves import seed_bands
from study.analysis.stats.divergence import CHANCE_ACCURACY, impute_diverged
from study.analysis.stats.intervals import detectable_difference, t_interval, tost, wilson_interval
from study.analysis.stats.path import ablation_path, path_configs, path_rows
from tests.synthetic import EFFECTS, LEVELS, synthetic


def effect_row(table: pd.DataFrame, factor: str, level: str) -> pd.Series:
    return table[(table["factor"] == factor) & (table["level"] == level)].iloc[0]


def test_planted_effects_found_with_right_sign_and_covering_interval():
    # One fixed draw; how often the interval covers is checked over many draws below.
    frame = synthetic(np.random.default_rng(12), seeds=3)
    table = block_effects(frame, LEVELS, "final_val_accuracy")
    assert len(table) == 4  # xavier, he, adam, 0.2 vs their references
    for factor, level in (("init", "he"), ("init", "xavier"), ("optimizer", "adam")):
        row = effect_row(table, factor, level)
        truth = EFFECTS[factor][level]
        assert row["diff"] > 0 and row["verdict"] == "higher"
        assert row["ci_low"] <= truth <= row["ci_high"]
        assert row["significant"] and row["p_holm"] < 0.05
        assert row["p_improvement"] == 1.0 and row["p_improvement_low"] < 1.0  # Wilson: not a point at 1
    # one difference per block: the combinations of the other factors' levels (seeds averaged)
    he = effect_row(table, "init", "he")
    assert (he["unit"], he["blocks"], he["pairs"]) == ("blocks", 2 * 2, 2 * 2 * 3)
    assert effect_row(table, "dropout", "0.2")["blocks"] == 3 * 2
    null = effect_row(table, "dropout", "0.2")
    assert not null["significant"] and null["verdict"] == "not significant"
    assert null["ci_low"] <= 0 <= null["ci_high"]
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()  # Holm never lowers a p-value


def test_negative_effect_has_negative_sign():
    effects = {**EFFECTS, "optimizer": {"sgd": 0.0, "adam": -0.04}}
    table = block_effects(synthetic(np.random.default_rng(2), effects=effects), LEVELS, "final_val_accuracy")
    row = effect_row(table, "optimizer", "adam")
    assert row["ci_high"] < 0 and row["verdict"] == "lower" and row["p_improvement"] < 0.1


# Two factors keep the repeated draws cheap.
SMALL = {"init": ["normal", "he"], "dropout": ["0.0", "0.2"], "optimizer": ["sgd", "adam"]}
DRAWS = 100


@pytest.fixture()
def no_gc_pauses():
    """statsmodels' Holm correction calls gc.collect() on every call; freezing the
    objects already alive keeps that cheap in a loop of thousands of tests."""
    gc.freeze()
    yield
    gc.unfreeze()


def test_interval_covers_the_planted_effect_at_about_the_stated_rate(no_gc_pauses):
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(DRAWS):
        table = block_effects(synthetic(rng, noise=0.02, levels=SMALL), SMALL, "final_val_accuracy")
        row = effect_row(table, "init", "he")
        covered.append(row["ci_low"] <= 0.05 <= row["ci_high"])
    # 95% nominal; 100 draws have a binomial standard error of 2.2 points
    assert 0.89 <= np.mean(covered) <= 1.0


def test_null_factor_not_declared_significant_beyond_the_stated_rate(no_gc_pauses):
    rng = np.random.default_rng(4)
    raw, holm = [], []
    for _ in range(DRAWS):
        table = block_effects(synthetic(rng, levels=SMALL), SMALL, "final_val_accuracy")
        row = effect_row(table, "dropout", "0.2")
        raw.append(row["p_value"] < 0.05)
        holm.append(row["significant"])
    # 5% nominal; allow about 2.5 binomial standard errors (2.2 points each) above it
    assert np.mean(raw) <= 0.10
    assert np.mean(holm) <= np.mean(raw)


def test_missing_trials_are_counted_as_unpaired_not_hidden():
    frame = synthetic(np.random.default_rng(5))
    gone = frame[(frame["level_init"] == "he") & (frame["seed"] == 0)].index[:2]
    table = block_effects(frame.drop(index=gone), LEVELS, "final_val_accuracy")
    row = effect_row(table, "init", "he")
    assert row["pairs"] == 12 - 2 and row["unpaired"] == 2 and row["blocks"] == 4  # each block keeps 2 seeds


def test_diverged_trials_count_at_chance_and_are_shown():
    frame = synthetic(np.random.default_rng(6))
    bad = frame.index[(frame["level_optimizer"] == "adam") & (frame["level_init"] == "normal")][:3]
    frame.loc[bad, "status"] = "diverged"
    frame.loc[bad, "final_val_accuracy"] = math.nan
    imputed = impute_diverged(frame, ("final_val_accuracy",))
    assert imputed.loc[bad, "final_val_accuracy"].eq(CHANCE_ACCURACY).all()
    assert imputed["imputed"].sum() == 3
    table = block_effects(imputed, LEVELS, "final_val_accuracy")
    assert effect_row(table, "optimizer", "adam")["diverged_in_pairs"] == 3
    assert effect_row(table, "optimizer", "adam")["pairs"] == 18  # nothing dropped
    summary = config_summary(imputed, list(LEVELS), ("final_val_accuracy",))
    assert summary["diverged"].sum() == 3
    assert summary["n"].sum() == len(frame)


def test_config_summary_t_interval_over_seeds_and_a_fixed_order_for_ties():
    frame = synthetic(np.random.default_rng(7), seeds=5)
    summary = config_summary(frame, list(LEVELS), ("final_val_accuracy",))
    assert len(summary) == 12 and (summary["n"] == 5).all()
    best = summary.iloc[0]
    assert (best["init"], best["optimizer"]) == ("he", "adam")
    values = frame[(frame["level_init"] == "he") & (frame["level_optimizer"] == "adam")
                   & (frame["level_dropout"] == best["dropout"])]["final_val_accuracy"]
    half = 2.7764451 * values.std(ddof=1) / math.sqrt(5)  # t(0.975, df=4)
    assert best["final_val_accuracy_ci_low"] == pytest.approx(values.mean() - half)
    assert best["final_val_accuracy_ci_high"] == pytest.approx(values.mean() + half)
    tied = frame.assign(final_val_accuracy=0.5)  # every config ties: the order must not follow the rows'
    first = config_summary(tied, list(LEVELS), ("final_val_accuracy",))
    shuffled = config_summary(tied.sample(frac=1, random_state=1), list(LEVELS), ("final_val_accuracy",))
    assert first[list(LEVELS)].equals(shuffled[list(LEVELS)])


def test_interval_helpers_edge_cases():
    assert all(math.isnan(v) for v in t_interval([0.5]))
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    low, high = t_interval([0.1, 0.2, 0.15, math.nan])
    assert low < 0.15 < high
    low, high = wilson_interval(10, 10)
    assert 0.72 < low < 0.73 and high == pytest.approx(1.0)  # the Wilson interval for 10 of 10 is [0.722, 1]
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    # 80% power at 5%: (t_.975 + t_.80) * sd / sqrt(n); for n = 72, sd = 1 about 0.33
    assert detectable_difference(1.0, 72) == pytest.approx(0.3338, abs=0.002)


def test_tost_shows_equivalence_only_inside_the_margin():
    rng = np.random.default_rng(13)
    small = rng.normal(0.0005, 0.001, size=10)  # a true difference of 0.05 pp, measured precisely
    result = tost(small, margin=0.005)
    assert result["p_tost"] < 0.05 and -0.005 < result["low"] and result["high"] < 0.005
    big = rng.normal(0.004, 0.002, size=5)  # close to the margin and noisy: not shown equivalent
    assert tost(big, margin=0.005)["p_tost"] > 0.05
    assert tost(np.full(4, 0.001), margin=0.005)["p_tost"] == 0.0


def test_ablation_path_is_greedy_and_ends_at_the_best_config():
    frame = synthetic(np.random.default_rng(10), noise=0.002)
    source = {"init": "normal", "optimizer": "sgd", "dropout": "0.0"}
    path, note = ablation_path(frame, list(LEVELS), source, "final_val_accuracy")
    assert note == ""
    assert path.iloc[0]["flip"] == "start"
    flips = list(path["factor"].iloc[1:])
    assert flips[:2] == ["init", "optimizer"]  # he (+5 pp) before adam (+3 pp)
    summary = config_summary(frame, list(LEVELS), ("final_val_accuracy",))
    assert path.iloc[-1]["mean"] == pytest.approx(summary.iloc[0]["final_val_accuracy_mean"])
    he_step = path[path["factor"] == "init"].iloc[0]
    assert he_step["gain_pairs"] == 3 and he_step["gain_ci_low"] <= 0.05 <= he_step["gain_ci_high"]
    assert (path["mean"].diff().iloc[1:3] > 0).all()


def test_path_order_from_one_set_of_seeds_numbers_from_another():
    """The confirm stage: the path is chosen on the main seeds and measured on fresh ones."""
    frame = synthetic(np.random.default_rng(14), noise=0.002, seeds=6)
    main, fresh = frame[frame["seed"] < 3], frame[frame["seed"] >= 3]
    source = {"init": "normal", "optimizer": "sgd", "dropout": "0.0"}
    configs, _ = path_configs(main, list(LEVELS), source, "final_val_accuracy")
    rows = path_rows(fresh, list(LEVELS), configs, "final_val_accuracy")
    chosen, _ = ablation_path(main, list(LEVELS), source, "final_val_accuracy")
    assert list(rows["flip"]) == list(chosen["flip"]) and (rows["n"] == 3).all()
    start = fresh[(fresh["level_init"] == "normal") & (fresh["level_optimizer"] == "sgd")
                  & (fresh["level_dropout"] == "0.0")]
    assert rows.iloc[0]["mean"] == pytest.approx(start["final_val_accuracy"].mean())


def test_ablation_path_stops_and_says_why_when_a_config_is_missing():
    frame = synthetic(np.random.default_rng(11), noise=0.002, levels={"init": LEVELS["init"],
                                                                      "optimizer": LEVELS["optimizer"]})
    frame = frame[~((frame["level_init"] == "he") & (frame["level_optimizer"] == "sgd"))
                  & ~((frame["level_init"] == "normal") & (frame["level_optimizer"] == "adam"))]
    path, note = ablation_path(frame, ["init", "optimizer"], {"init": "normal", "optimizer": "sgd"},
                               "final_val_accuracy", target={"init": "he", "optimizer": "adam"})
    assert len(path) == 1 and "stops" in note and "init=he" in note


def test_seed_bands_average_configs_within_a_seed_first():
    frame = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "seed": [0, 0, 1, 1],
                          "level_init": ["he", "he", "he", "he"]})
    curves = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "metric": "val_accuracy", "epoch": 0,
                           "value": [0.2, 0.4, 0.5, 0.7]})
    bands = seed_bands(curves, frame, "init", "val_accuracy").iloc[0]
    assert (bands["min"], bands["max"], bands["seeds"]) == (pytest.approx(0.3), pytest.approx(0.6), 2)


def test_detectable_difference_is_positive_and_falls_with_every_added_unit():
    """statsmodels' solver lands on the negative root, as an array, for some n (73): never shown to a reader."""
    from study.analysis.stats.intervals import detectable_difference

    values = [detectable_difference(1.0, n) for n in range(2, 201)]
    assert all(isinstance(v, float) and v > 0 for v in values)
    assert all(later < earlier for earlier, later in zip(values, values[1:]))
    assert detectable_difference(2.0, 73) == pytest.approx(2 * detectable_difference(1.0, 73))
