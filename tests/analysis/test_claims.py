"""The lesson's claims table on synthetic studies with planted effects: each verdict follows what was planted."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from study.analysis.claims import lesson_claims, verdict
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


def claim(table: pd.DataFrame, text: str, contrast: str = "", measure: str = "") -> pd.Series:
    hits = table[table["claim"].str.startswith(text) & table["contrast"].str.contains(contrast, regex=False)
                 & table["measure"].str.startswith(measure)]
    assert len(hits) == 1, (text, contrast, measure, table[["claim", "contrast", "measure"]])
    return hits.iloc[0]


@pytest.fixture(scope="module")
def claims():
    return lesson_claims(lesson_like(np.random.default_rng(40)), GRID)


def test_relu_claim_holds_under_sgd_and_is_contradicted_under_adam(claims):
    sgd = claim(claims, "ReLU", "optimizer=sgd", "val accuracy")
    assert sgd["verdict"] == "supported" and sgd["ci_low"] <= 0.05 <= sgd["ci_high"]
    assert "init=xavier/he" in sgd["contrast"] and "batch_norm=false" in sgd["contrast"]
    adam = claim(claims, "ReLU", "optimizer=adam")
    assert adam["verdict"] == "contradicted" and adam["ci_high"] < 0
    assert adam["unit"] == "blocks" and adam["n"] == 2 * 2  # init xavier/he x dropout; batch_norm fixed


def test_init_claims_within_each_activation(claims):
    for activation in ("sigmoid", "relu"):
        row = claim(claims, "Plain N(0, 1)", f"xavier vs normal, within activation={activation}")
        assert row["verdict"] == "supported" and row["ci_low"] > 0.09
    he_relu = claim(claims, "Xavier suits sigmoid", "he vs xavier")
    assert he_relu["verdict"] == "supported" and he_relu["ci_low"] <= 0.01 <= he_relu["ci_high"]
    xavier_sigmoid = claim(claims, "Xavier suits sigmoid", "xavier vs he")
    assert xavier_sigmoid["verdict"] == "no effect"  # planted 0: the interval sits inside +-0.5 pp


def test_preconditions_make_claims_not_testable_with_the_reason(claims):
    dropout = claim(claims, "Dropout")
    assert dropout["verdict"] == "not testable here" and "nothing to regularise" in dropout["why"]
    adam = claim(claims, "Adam beats SGD")
    assert adam["verdict"] == "not testable here" and "one untuned learning rate per optimizer" in adam["why"]
    assert adam["diff"] == adam["diff"]  # the numbers are still shown
    warm = claim(claims, "Warm-up then cosine")
    assert warm["verdict"] == "not testable here" and warm["why"] == "this study does not vary `schedule`"


def test_dropout_claim_is_testable_when_there_is_overfitting():
    table = lesson_claims(lesson_like(np.random.default_rng(41), overfit=0.05), GRID)
    dropout = claim(table, "Dropout")
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
    assert claim(table, "Warm-up then cosine")["verdict"] == "supported"
    assert "30 epochs, 3 of them warm-up" in claim(table, "Warm-up then cosine")["why"]
    assert claim(table, "The lesson's warm-up formula")["verdict"] == "contradicted"  # a lost epoch, not warm-up
    plateau = claim(table, "ReduceLROnPlateau")
    assert plateau["verdict"] == "not testable here" and "changed in only 2 of 6 plateau trials" in plateau["why"]
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


def test_a_condition_the_study_fixes_elsewhere_is_not_tested_under_the_wrong_name():
    """A study that runs only SGD tests ReLU vs sigmoid under SGD, and says it cannot under Adam."""
    frame = lesson_like(np.random.default_rng(44))
    sgd_only = frame[frame["optimizer"] == "sgd"].drop(columns="level_optimizer")
    table = lesson_claims(sgd_only, {k: v for k, v in GRID.items() if k != "optimizer"})
    under_sgd = claim(table, "ReLU", "optimizer=sgd", "val accuracy")
    assert under_sgd["verdict"] == "supported" and "the study fixes `optimizer`" in under_sgd["why"]
    under_adam = claim(table, "ReLU", "optimizer=adam")
    assert under_adam["verdict"] == "not testable here"
    assert under_adam["why"] == "the condition is not in this study: it runs `optimizer` = sgd only"
