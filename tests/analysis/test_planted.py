"""Each method recovers what was planted: failures, a no-op level, an interaction without a main effect,
and block-aware intervals where a pseudo-replicated one would be too narrow."""

from __future__ import annotations

import gc
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.blocks import block_effects
from study.analysis.stats.factorial import decompose, grouped_terms, strongest_interactions, total_effects
from study.analysis.stats.failures import (FailureRule, failing_configs, failure_effects, failures_by_level,
                                           learner_effects, mark_failures)
from study.analysis.stats.noop import learning_rate_changes, noop_table, schedule_factors
from tests.synthetic import LEVELS, MAJORITY, fail_where, heterogeneous, make_noop, synthetic

RULE = FailureRule(MAJORITY)


def row(table: pd.DataFrame, factor: str, level: str) -> pd.Series:
    return table[(table["factor"] == factor) & (table["level"] == level)].iloc[0]


# --------------------------------------------------------------------------- failures


def test_planted_failures_are_counted_and_separated_from_accuracy():
    """SGD never learns with init=normal (2 of the 6 blocks of `optimizer`); Adam adds 3 pp where both learn.
    The pooled effect mixes the rescue into the gain; the failure rate and the learners' effect split them."""
    frame = mark_failures(fail_where(synthetic(np.random.default_rng(30)), init="normal", optimizer="sgd"), RULE)
    assert int(frame["failed"].sum()) == 2 * 3  # init=normal, sgd: 2 dropout levels x 3 seeds
    failures = failure_effects(frame, LEVELS)
    adam = row(failures, "optimizer", "adam")
    assert adam["diff"] == pytest.approx(-2 / 6)  # failure rate 1 -> 0 in 2 of 6 blocks
    assert adam["blocks"] == 6 and adam["verdict"] in ("lower", "not significant")  # never a "no-op"
    learners = row(learner_effects(frame, LEVELS, "final_val_accuracy"), "optimizer", "adam")
    assert learners["blocks"] == 4  # the init=normal blocks have no pair where both learned
    assert learners["ci_low"] <= 0.03 <= learners["ci_high"]
    pooled = row(block_effects(frame, LEVELS, "final_val_accuracy"), "optimizer", "adam")
    assert pooled["diff"] > 0.2  # the rescued blocks (about +70 pp each) dominate the mean
    assert pooled["median"] < pooled["diff"] / 3  # while the median block is the learners' gain
    by_level = failures_by_level(frame, LEVELS).set_index(["factor", "level"])
    assert by_level.loc[("optimizer", "sgd"), "failed"] == 6 and by_level.loc[("optimizer", "adam"), "failed"] == 0
    configs = failing_configs(frame, list(LEVELS))
    assert len(configs) == 2 and (configs["failed"] == 3).all()


def test_does_not_learn_rule_threshold_and_non_finite_loss():
    frame = synthetic(np.random.default_rng(31), seeds=1)
    frame.loc[0, "final_val_accuracy"] = MAJORITY + 0.049  # within the 5 pp margin: did not learn
    frame.loc[1, "final_val_accuracy"] = MAJORITY + 0.051  # just above it: learned, however badly
    frame.loc[2, "final_val_loss"] = math.inf  # a non-finite loss is a failure whatever the accuracy
    marked = mark_failures(frame, RULE)
    assert list(marked["failed"].iloc[:3]) == [1.0, 0.0, 1.0]
    assert RULE.threshold == pytest.approx(MAJORITY + 0.05)


# --------------------------------------------------------------------------- no-ops


def test_planted_noop_level_is_called_a_noop_not_a_coin_flip():
    levels = {**LEVELS, "schedule": ["constant", "plateau", "cosine"]}
    effects = {"init": {"normal": 0.0, "xavier": 0.02, "he": 0.05}, "optimizer": {"sgd": 0.0, "adam": 0.03},
               "dropout": {"0.0": 0.0, "0.2": 0.0}, "schedule": {"constant": 0.0, "plateau": 0.0, "cosine": 0.01}}
    frame = make_noop(synthetic(np.random.default_rng(32), levels=levels, effects=effects), "schedule", "plateau",
                      "constant")
    table = block_effects(frame, levels, "final_val_accuracy")
    plateau, cosine = row(table, "schedule", "plateau"), row(table, "schedule", "cosine")
    assert plateau["equal_pairs"] == plateau["pairs"] == 12 * 3 and plateau["verdict"] == "no-op"
    assert cosine["equal_pairs"] == 0 and cosine["verdict"] == "higher"
    # half the pairs identical is still "mostly no-op": no p-value is read for it
    partly = frame.copy()
    changed = partly.index[(partly["level_schedule"] == "plateau") & (partly["seed"] == 0)]
    partly.loc[changed, "final_val_accuracy"] += 0.001
    assert row(block_effects(partly, levels, "final_val_accuracy"), "schedule", "plateau")["verdict"] == "mostly no-op"


def test_learning_rate_changes_are_counted_per_trial_and_level():
    frame = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "seed": [0, 0, 1, 1], "level_schedule":
                          ["constant", "plateau", "constant", "plateau"], "schedule": ["constant", "plateau"] * 2})
    curves = pd.DataFrame({"run_id": list("aaabbbcccddd"), "metric": "learning_rate", "epoch": [0, 1, 2] * 4,
                           "value": [0.01] * 3 + [0.01] * 3 + [0.01] * 3 + [0.01, 0.01, 0.001]})
    changed = learning_rate_changes(curves)
    assert changed.to_dict() == {"a": False, "b": False, "c": False, "d": True}
    frame = frame.merge(changed, left_on="run_id", right_index=True)
    effects = pd.DataFrame([{"factor": "schedule", "level": "plateau", "reference": "constant", "pairs": 2,
                             "equal_pairs": 1, "verdict": "mostly no-op"}])
    table = noop_table(frame, effects)
    assert (table.iloc[0]["level_lr_changed"], table.iloc[0]["level_trials"]) == (1, 2)
    assert schedule_factors(frame, {"schedule": ["constant", "plateau"]}) == ["schedule"]


# --------------------------------------------------------------------------- decomposition


def interaction_only(rng: np.random.Generator, size: float = 0.03, seeds: int = 3) -> pd.DataFrame:
    """opt x bn interaction without main effects: +size when the levels 'agree', -size when not; dropout null."""
    levels = {"opt": ["sgd", "adam"], "bn": ["false", "true"], "dropout": ["0.0", "0.2"]}
    rows = []
    for seed in range(seeds):
        for opt, bn, dropout in itertools.product(*levels.values()):
            sign = 1 if (opt == "adam") == (bn == "true") else -1
            y = 0.8 + sign * size + rng.normal(0, 0.002)
            rows.append({"level_opt": opt, "level_bn": bn, "level_dropout": dropout, "seed": seed,
                         "status": "completed", "final_val_accuracy": y})
    return pd.DataFrame(rows)


def test_planted_interaction_without_main_effect_is_found_and_ranks_its_factors_first():
    frame = interaction_only(np.random.default_rng(33))
    factors = ["opt", "bn", "dropout"]
    result = decompose(frame, factors, "final_val_accuracy")
    terms = result.terms.set_index("term")
    assert terms.loc["opt x bn", "share"] > 0.95 and terms.loc["opt x bn", "p_holm"] < 1e-6
    assert terms.loc["opt", "share"] < 0.01 and terms.loc["bn", "share"] < 0.01
    assert strongest_interactions(result, k=1) == [("opt", "bn")]
    ranking = total_effects(result)
    assert list(ranking["factor"][:2]) == ["opt", "bn"] or list(ranking["factor"][:2]) == ["bn", "opt"]
    assert ranking.set_index("factor").loc["opt", "total_share"] > 0.95
    # the main-effect view alone misses it: opt's block effect averages +6 and -6 pp to about 0
    main = row(block_effects(frame, {f: list(frame[f"level_{f}"].unique()) for f in factors}, "final_val_accuracy"),
               "opt", "adam")
    assert abs(main["diff"]) < 0.005 and main["verdict"] == "not significant"


def test_saturated_decomposition_matches_statsmodels_and_sums_to_one():
    """Balanced: every term's sum of squares equals the full-interaction OLS ANOVA's (type I and II agree when
    balanced), and terms + seed noise add up to the total sum of squares."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = synthetic(np.random.default_rng(34), interaction=0.02)
    result = decompose(frame, list(LEVELS), "final_val_accuracy")
    data = frame.rename(columns={"final_val_accuracy": "y"})
    reference = anova_lm(smf.ols("y ~ C(level_init) * C(level_optimizer) * C(level_dropout)", data=data).fit(), typ=1)
    ours = result.terms.set_index("term")["sum_sq"]
    names = {"C(level_init)": "init", "C(level_optimizer)": "optimizer", "C(level_dropout)": "dropout"}
    for term, ss in reference["sum_sq"].items():
        if term == "Residual":
            assert result.seed_noise["sum_sq"] == pytest.approx(ss, rel=1e-9)
        else:
            assert ours[" x ".join(names[p] for p in term.split(":"))] == pytest.approx(ss, rel=1e-9)
    total = float(((frame["final_val_accuracy"] - frame["final_val_accuracy"].mean()) ** 2).sum())
    assert result.terms["sum_sq"].sum() + result.seed_noise["sum_sq"] == pytest.approx(total, rel=1e-9)
    assert result.terms["share"].sum() + result.seed_noise["share"] == pytest.approx(1.0)
    assert (result.terms["p_holm"] >= result.terms["p_value"] - 1e-12).all()
    grouped = grouped_terms(result)
    assert list(grouped["kind"]) == ["main"] * 3 + ["two-way"] * 3 + ["3-way", "error"]


def test_decomposition_degrades_with_a_reason():
    frame = synthetic(np.random.default_rng(35), seeds=1)
    one_seed = decompose(frame, list(LEVELS), "final_val_accuracy")
    assert not one_seed.empty and "one seed per config" in one_seed.note and one_seed.terms["p_value"].isna().all()
    holey = synthetic(np.random.default_rng(36))
    holey = holey[~((holey["level_init"] == "he") & (holey["level_optimizer"] == "adam"))]
    result = decompose(holey, list(LEVELS), "final_val_accuracy")
    assert result.empty and "10 of the 12 configs" in result.note
    unbalanced = synthetic(np.random.default_rng(37)).drop(index=[0])  # one config lost one seed
    assert not decompose(unbalanced, list(LEVELS), "final_val_accuracy").empty


# --------------------------------------------------------------------------- pseudo-replication

COVERAGE_DRAWS = 200


@pytest.fixture()
def no_gc_pauses():
    gc.freeze()
    yield
    gc.unfreeze()


def test_pseudo_replicated_interval_would_have_been_too_narrow(no_gc_pauses):
    """The effect of `opt` differs between blocks (SD 3 pp) far more than seeds differ (0.2 pp). Over many
    studies, the block interval covers the mean effect at about its stated 95%; counting every (block, seed)
    pair as independent gives an interval about sqrt(3) times too narrow that covers far less often; the
    seed-noise interval covers what it claims: the mean effect of the blocks this study happened to have."""
    rng = np.random.default_rng(38)
    levels = {"opt": ["sgd", "adam"], "a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1", "b2"]}
    block, pseudo, seed_noise, widths = [], [], [], []
    for _ in range(COVERAGE_DRAWS):
        frame, these_blocks = heterogeneous(rng, mu=0.02, tau=0.03, noise=0.002)
        effect = block_effects(frame, levels, "final_val_accuracy").set_index("factor").loc["opt"]
        block.append(effect["ci_low"] <= 0.02 <= effect["ci_high"])
        pseudo.append(effect["pseudo_ci_low"] <= 0.02 <= effect["pseudo_ci_high"])
        seed_noise.append(effect["seed_ci_low"] <= these_blocks <= effect["seed_ci_high"])
        widths.append((effect["ci_high"] - effect["ci_low"]) / (effect["pseudo_ci_high"] - effect["pseudo_ci_low"]))
    # binomial standard error at 95% over 200 draws: 1.5 points
    assert 0.91 <= np.mean(block) <= 0.99
    assert np.mean(pseudo) <= 0.85
    assert 0.91 <= np.mean(seed_noise) <= 0.99
    assert np.median(widths) > 1.5
