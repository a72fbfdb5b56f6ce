"""The lesson's claims table on synthetic studies with planted effects: each verdict follows what was planted."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from study.lesson.claims import GRID as GRID_SCOPE, LESSON, lesson_claims, verdict
from study.analysis.stats.failures import FailureRule, mark_failures
from tests.synthetic import MAJORITY

GRID = {"activation": ["sigmoid", "relu"], "init": ["normal", "xavier", "he"], "batch_norm": ["false", "true"],
        "dropout": ["0.0", "0.2"], "optimizer": ["sgd", "adam"]}
LR = {"sgd": 0.01, "adam": 0.001}


def lesson_like(rng: np.random.Generator, overfit: float = -0.01, seeds: int = 3, noise: float = 0.001) -> pd.DataFrame:
    """ReLU +5 pp over sigmoid under SGD but -3 pp under Adam; N(0, 1) init -10 pp; He +1 pp over Xavier with
    ReLU only; batch norm +0.2 pp; dropout -1 pp; last-epoch train accuracy = val accuracy + `overfit`."""
    rows = []
    for seed in range(seeds):
        for activation, init, bn, dropout, optimizer in itertools.product(*GRID.values()):
            y = 0.9
            y += (0.05 if optimizer == "sgd" else -0.03) * (activation == "relu")
            y -= 0.10 * (init == "normal")
            y += 0.01 * (activation == "relu" and init == "he")
            y += 0.002 * (bn == "true") - 0.01 * (dropout == "0.2")
            y += rng.normal(0, noise)
            rows.append({"level_activation": activation, "level_init": init, "level_batch_norm": bn,
                         "level_dropout": dropout, "level_optimizer": optimizer, "seed": seed, "status": "completed",
                         "activation": activation, "init": init, "batch_norm": bn == "true",
                         "dropout": float(dropout), "optimizer": optimizer, "learning_rate": LR[optimizer],
                         "schedule": "constant", "epochs": 5, "warmup_epochs": 2, "final_val_accuracy": y,
                         "test_accuracy": y + rng.normal(0, noise), "final_val_loss": 2 * (1 - y),
                         "last_accuracy": y + overfit})
    return mark_failures(pd.DataFrame(rows), FailureRule(MAJORITY))


def claim(table: pd.DataFrame, text: str, scope: str = "", contrast: str = "", measure: str = "") -> pd.Series:
    hits = table[table["claim"].str.startswith(text) & table["scope"].str.startswith(scope)
                 & table["contrast"].str.contains(contrast, regex=False) & table["measure"].str.startswith(measure)]
    assert len(hits) == 1, (text, scope, contrast, measure, table[["claim", "scope", "contrast", "measure"]])
    return hits.iloc[0]


@pytest.fixture(scope="module")
def claims():
    return lesson_claims(lesson_like(np.random.default_rng(40)), GRID)


def test_every_claim_is_read_in_the_lessons_condition_and_over_the_whole_grid(claims):
    tested = claims[claims["scope"] != ""]
    assert set(tested["scope"]) == {LESSON, GRID_SCOPE}
    assert (tested.groupby(["claim", "contrast", "measure"])["scope"].nunique() == 2).all()


def test_relu_claim_holds_in_the_lessons_condition_and_depends_on_the_optimizer_over_the_grid(claims):
    lesson = claim(claims, "ReLU", LESSON, measure="val accuracy")
    assert lesson["verdict"] == "supported" and lesson["ci_low"] <= 0.05 <= lesson["ci_high"]
    assert lesson["unit"] == "seeds" and lesson["n"] == 3  # one block: every other factor at the first model's level
    for name in ("init=xavier", "batch_norm=false", "dropout=0.0", "optimizer=sgd"):
        assert name in lesson["condition"]
    grid = claim(claims, "ReLU", GRID_SCOPE, measure="val accuracy")
    assert grid["verdict"] == "depends on optimizer" and grid["unit"] == "blocks"
    assert grid["holds"].startswith("optimizer=sgd: +5.") and grid["reverses"].startswith("optimizer=adam: -2.")


def test_init_claims_within_each_activation(claims):
    for activation in ("sigmoid", "relu"):
        for scope in (LESSON, GRID_SCOPE):
            row = claims[(claims["claim"].str.startswith("Plain N(0, 1)")) & (claims["scope"] == scope)
                         & claims["contrast"].str.contains("xavier vs normal")
                         & claims["condition"].str.startswith(f"activation={activation}")].iloc[0]
            assert row["verdict"] == "supported" and row["ci_low"] > 0.09
    he_relu = claim(claims, "Xavier suits sigmoid", GRID_SCOPE, "he vs xavier")
    assert he_relu["verdict"] == "supported" and he_relu["ci_low"] <= 0.01 <= he_relu["ci_high"]
    xavier_sigmoid = claim(claims, "Xavier suits sigmoid", GRID_SCOPE, "xavier vs he")
    assert xavier_sigmoid["verdict"] == "no effect"  # planted 0: the interval sits inside +-0.5 pp


def test_preconditions_make_claims_not_testable_with_the_reason(claims):
    for scope in (LESSON, GRID_SCOPE):
        dropout = claim(claims, "Dropout", scope)
        assert dropout["verdict"] == "not testable here" and "nothing to regularise" in dropout["why"]
        adam = claim(claims, "Adam beats SGD", scope)
        assert adam["verdict"] == "not testable here" and "one untuned learning rate per optimizer" in adam["why"]
        assert adam["diff"] == adam["diff"]  # the numbers are still shown
    warm = claim(claims, "Warm-up then cosine")
    assert warm["verdict"] == "not testable here" and warm["why"] == "this study does not vary `schedule`"
    robust = claim(claims, "Batch normalisation makes training robust", LESSON)
    assert robust["verdict"] == "not testable here" and "nothing for batch_norm to make robust" in robust["why"]


def test_dropout_claim_is_testable_when_there_is_overfitting():
    table = lesson_claims(lesson_like(np.random.default_rng(41), overfit=0.05), GRID)
    dropout = claim(table, "Dropout", GRID_SCOPE)
    assert dropout["verdict"] == "contradicted" and "overfitting to regularise" in dropout["why"]


def test_each_optimizer_at_its_best_learning_rate():
    """A learning-rate sweep per optimizer (compound levels): the claim compares each at its best rate."""
    rng = np.random.default_rng(42)
    arms = {"sgd_0.01": ("sgd", 0.01, 0.93), "sgd_0.1": ("sgd", 0.1, 0.95), "adam_0.001": ("adam", 0.001, 0.96),
            "adam_0.01": ("adam", 0.01, 0.94)}
    rows = []
    for seed, (label, (optimizer, lr, acc)) in itertools.product(range(5), arms.items()):
        y = acc + rng.normal(0, 0.001)
        rows.append({"level_optimizer": label, "seed": seed, "status": "completed", "optimizer": optimizer,
                     "learning_rate": lr, "final_val_accuracy": y, "test_accuracy": y, "final_val_loss": 0.2})
    frame = mark_failures(pd.DataFrame(rows), FailureRule(MAJORITY))
    row = claim(lesson_claims(frame, {"optimizer": list(arms)}), "Adam beats SGD")
    assert row["scope"] == f"{LESSON} = {GRID_SCOPE}"  # one factor: the two readings are one
    assert row["verdict"] == "supported" and row["contrast"] == "optimizer: adam_0.001 vs sgd_0.1"
    assert row["unit"] == "seeds" and row["n"] == 5 and row["ci_low"] <= 0.01 <= row["ci_high"]


def test_schedule_claims_need_the_corrected_warmup_and_a_plateau_that_fired():
    rng = np.random.default_rng(43)
    rows = []
    shift = {"constant": 0.0, "plateau": 0.0, "warmup_cosine": -0.02, "warmup_cosine_corrected": 0.004}
    for seed, schedule, dropout in itertools.product(range(3), shift, ("0.0", "0.2")):
        y = 0.95 + shift[schedule] + rng.normal(0, 0.0005)
        rows.append({"level_schedule": schedule, "level_dropout": dropout, "seed": seed, "status": "completed",
                     "schedule": schedule, "dropout": float(dropout), "epochs": 30, "warmup_epochs": 3,
                     "final_val_accuracy": y, "test_accuracy": y, "final_val_loss": 0.2, "last_accuracy": y,
                     "lr_changed": schedule.startswith("warmup") or (schedule == "plateau" and seed == 0)})
    frame = mark_failures(pd.DataFrame(rows), FailureRule(MAJORITY))
    table = lesson_claims(frame, {"schedule": list(shift), "dropout": ["0.0", "0.2"]})
    for scope in (LESSON, GRID_SCOPE):
        assert claim(table, "Warm-up then cosine", scope)["verdict"] == "supported"
        assert "30 epochs, 3 of them warm-up" in claim(table, "Warm-up then cosine", scope)["why"]
        assert claim(table, "The lesson's warm-up formula", scope)["verdict"] == "contradicted"  # a lost epoch
        plateau = claim(table, "ReduceLROnPlateau", scope)
        assert plateau["verdict"] == "not testable here" and "changed in only 2 of 6 plateau trials" in plateau["why"]
    assert claim(table, "Warm-up then cosine", LESSON)["condition"] == "dropout=0.0"
    only_lesson = frame[frame["level_schedule"] != "warmup_cosine_corrected"]
    row = claim(lesson_claims(only_lesson, {"schedule": ["constant", "plateau", "warmup_cosine"],
                                            "dropout": ["0.0", "0.2"]}), "Warm-up then")
    assert row["verdict"] == "not testable here" and "learning rate 0" in row["why"]


@pytest.mark.parametrize("expected, low, high, word", [
    (1, 0.01, 0.03, "supported"), (1, -0.03, -0.01, "contradicted"), (1, -0.002, 0.003, "no effect"),
    (1, -0.01, 0.03, "inconclusive"), (-1, -0.3, -0.1, "supported"), (-1, 0.1, 0.3, "contradicted"),
    (0, -0.002, 0.002, "supported"), (0, 0.01, 0.02, "contradicted"), (1, float("nan"), 0.1, "not testable here"),
])
def test_verdict_words(expected, low, high, word):
    assert verdict(expected, low, high, 0.005) == word


def test_a_stated_condition_the_study_does_not_run_is_not_tested_under_another_name():
    """A study that runs only ReLU cannot test what N(0, 1) init does to sigmoid, and says why."""
    frame = lesson_like(np.random.default_rng(44))
    relu_only = frame[frame["activation"] == "relu"].drop(columns="level_activation")
    table = lesson_claims(relu_only, {k: v for k, v in GRID.items() if k != "activation"})
    sigmoid = table[table["claim"].str.startswith("Plain N(0, 1)") & table["condition"].eq("activation=sigmoid")]
    assert len(sigmoid) == 2 and (sigmoid["verdict"] == "not testable here").all()
    assert (sigmoid["why"] == "the condition is not in this study: it runs `activation` = relu only").all()
    relu = table[table["claim"].str.startswith("Plain N(0, 1)") & table["condition"].str.contains("activation=relu")]
    assert (relu["verdict"] == "supported").all() and relu["why"].str.contains("the study fixes `activation`").all()


def test_a_claim_whose_sub_effects_change_sign_depends_on_the_moderator():
    """He vs Xavier under ReLU: +1 pp without batch norm, -1 pp with it: 'no effect' on average, but it depends."""
    rng = np.random.default_rng(45)
    rows = []
    for seed, init, bn, opt in itertools.product(range(3), ("xavier", "he"), ("false", "true"), ("sgd", "adam")):
        y = 0.95 + (0.01 if bn == "false" else -0.01) * (init == "he") + rng.normal(0, 0.0005)
        rows.append({"level_init": init, "level_batch_norm": bn, "level_optimizer": opt, "seed": seed,
                     "status": "completed", "activation": "relu", "init": init, "batch_norm": bn == "true",
                     "optimizer": opt, "learning_rate": LR[opt], "final_val_accuracy": y, "test_accuracy": y,
                     "final_val_loss": 0.2})
    frame = mark_failures(pd.DataFrame(rows), FailureRule(MAJORITY))
    table = lesson_claims(frame, {"init": ["xavier", "he"], "batch_norm": ["false", "true"], "optimizer": ["sgd", "adam"]})
    grid = claim(table, "Xavier suits sigmoid", GRID_SCOPE, "he vs xavier")
    assert abs(grid["diff"]) < 0.002 and grid["verdict"] == "depends on batch_norm"
    assert grid["holds"].startswith("batch_norm=false: +") and grid["reverses"].startswith("batch_norm=true: -")
    lesson = claim(table, "Xavier suits sigmoid", LESSON, "he vs xavier")  # the lesson's SGD without batch norm
    assert lesson["verdict"] == "supported" and lesson["condition"] == "activation=relu, batch_norm=false, optimizer=sgd"
