"""Planted truths for the advice a practitioner reads first: a qualitative interaction (an effect that
reverses across another factor, zero on average) and a top group of exact ties (no winner named)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.failures import FailureRule
from study.analysis.study_analysis import analyse
from study.config import TrialConfig
from study.report.sections import findings
from study.report.sections.advice import advice_section
from study.report.sections.conditional import conditional_section
from study.spec.study_spec import parse_spec
from tests.synthetic import MAJORITY

LEVELS = {"init": ["xavier", "he"], "batch_norm": ["false", "true"], "dropout": ["0.0", "0.1", "0.2"]}
SPEC = parse_spec({"name": "planted", "seeds": list(range(8)), "factors": {
    "init": ["xavier", "he"], "batch_norm": [False, True], "dropout": [0.0, 0.1, 0.2]}})


def planted(rng: np.random.Generator, noise: float = 0.002) -> pd.DataFrame:
    """init=he: +2 pp without batch norm, -2 pp with it (zero on average); batch norm +4 pp; dropout does nothing.
    So the top group is xavier + batch norm at any of the three dropout rates (exact ties in expectation)."""
    rows = []
    for seed, (init, bn, dropout) in itertools.product(range(8), itertools.product(*LEVELS.values())):
        y = 0.90 + 0.04 * (bn == "true") + 0.02 * (init == "he") * (1 if bn == "false" else -1)
        rows.append({"level_init": init, "level_batch_norm": bn, "level_dropout": dropout, "seed": seed,
                     "status": "completed", "final_val_accuracy": y + rng.normal(0, noise),
                     "test_accuracy": y + rng.normal(0, noise), "final_val_loss": 2 * (1 - y),
                     "epochs_run": 5.0, "run_id": f"r{len(rows)}", "trial_key": f"k{len(rows)}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def result():
    return analyse(SPEC, planted(np.random.default_rng(11)), TrialConfig(),
                   FailureRule(MAJORITY, source="planted", validation_size=10_000))


def test_the_qualitative_interaction_is_found_and_flagged(result):
    effects = result.effects["final_val_accuracy"].set_index(["factor", "level"])
    assert effects.loc[("init", "he"), "verdict"] == "not significant"  # the average hides it
    flagged = result.sign_changes
    assert len(flagged) == 1  # batch norm: +4 pp with xavier, 0 with he: an interaction, but no reversal
    row = flagged.iloc[0]
    assert (row["factor"], row["level"], row["moderator"]) == ("init", "he", "batch_norm")
    assert row["holds"] == ["false"] and row["reverses"] == ["true"] and row["holm"]
    sub = result.conditional.set_index(["factor", "level", "moderator", "moderator_level"])
    assert sub.loc[("init", "he", "batch_norm", "false"), "ci_low"] < 0.02 < sub.loc[
        ("init", "he", "batch_norm", "false"), "ci_high"]
    assert not result.conditional[result.conditional["factor"] == "dropout"]["sign_change"].any()
    sentence = next(s for s in findings.summary_sentences(result) if s.startswith("Sign change:"))
    assert "`init=he` vs `xavier` across `batch_norm`" in sentence and "both sides hold after Holm" in sentence


def test_the_top_group_is_the_ties_and_no_winner_is_named(result, tmp_path):
    top = result.top
    members = top.members
    assert top.size == 3 and set(members["init"]) == {"xavier"} and set(members["batch_norm"]) == {"true"}
    assert set(members["dropout"]) == {"0.0", "0.1", "0.2"}
    assert not top.table[~top.table["in_top_group"]]["init"].eq("xavier").all()  # the next best is he + batch norm
    settled = top.settled.set_index("factor")["verdict"]
    assert settled["init"] == "settled" and settled["batch_norm"] == "settled" and settled["dropout"] == "open"
    assert abs(top.table["p_best"].sum() - 1) < 1e-9  # the bootstrap's share of wins (stability, in the CSV only)
    first = findings.summary_sentences(result)[0]
    assert first.startswith("What to pick: 3 configs cannot be told apart from the best") and "winner" in first
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    text = advice_section(result, tmp_path) + conditional_section(result, tmp_path)
    assert "**3 configs cannot be told apart from the best**" in text and "names no single winner" in text
    assert "The best configuration" not in text + "\n".join(findings.summary_sentences(result))
    assert "does not matter between 0.0, 0.1, 0.2" in text
    saved = pd.read_csv(tmp_path / "tables" / "top_group.csv")
    assert saved["in_top_group"].sum() == 3


def test_the_region_keeps_what_learns_near_the_top_and_its_effects(result):
    region = result.region
    assert region.levels["batch_norm"] == ["true"]  # within 1 pp of the best only with batch norm
    assert region.levels["init"] == ["xavier"] and region.levels["dropout"] == ["0.0", "0.1", "0.2"]
    table = result.region_effects
    assert set(table["factor"]) == {"dropout"} and (table["verdict"] == "not significant").all()


def test_config_intervals_carry_the_validation_sets_sampling_error(result):
    board = result.configs.iloc[0]
    seed_width = board["final_val_accuracy_seed_ci_high"] - board["final_val_accuracy_seed_ci_low"]
    width = board["final_val_accuracy_ci_high"] - board["final_val_accuracy_ci_low"]
    binomial = np.sqrt(board["final_val_accuracy_mean"] * (1 - board["final_val_accuracy_mean"]) / 10_000)
    assert width > seed_width and width > 2 * 1.9 * binomial  # the binomial SD of 10,000 images is in it
    assert board["final_val_accuracy_eval_sd"] == pytest.approx(binomial)


def test_no_interval_is_zero_width_when_every_seed_scores_the_same():
    from study.analysis.stats.evaluation import too_small, with_evaluation_noise

    low, high = with_evaluation_noise(np.array([0.9133, 0.9133, 0.9133]), size=300)
    assert high - low > 0.05 and low < 0.9133 < high  # 300 images: +-3 pp, not [91.33, 91.33]
    assert too_small(300) and not too_small(10_000)


def test_a_specs_region_replaces_the_data_driven_one():
    spec = parse_spec({**SPEC.raw, "region": {"init": ["he"], "batch_norm": [False]}})
    result = analyse(spec, planted(np.random.default_rng(11)), TrialConfig(), FailureRule(MAJORITY))
    assert result.region.how == "spec" and result.region.levels["init"] == ["he"]
    assert result.region.levels["batch_norm"] == ["false"] and result.region.configs == 3
    assert set(result.region_effects["factor"]) == {"dropout"}


def test_a_study_where_nothing_learns_has_no_region_and_says_so(tmp_path):
    """Tiny studies (a few hundred images, one epoch) can leave every config at chance: no region, no crash."""
    frame = planted(np.random.default_rng(3)).assign(final_val_accuracy=0.10, test_accuracy=0.10)
    result = analyse(SPEC, frame, TrialConfig(), FailureRule(MAJORITY, source="planted", validation_size=10_000))
    assert result.region is None and result.region_effects.empty
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    text = advice_section(result, tmp_path)
    assert "region near the top**: none" in text or result.top is None
