"""The committed lesson_grid report recomputes from its own trials.csv: the conditional effects and the top
group a reader sees are what the analysis gives on the tidy data shipped beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.failures import FailureRule
from study.analysis.study_analysis import analyse
from study.config import TrialConfig
from study.lesson.reference import LESSON_FIRST_MODEL
from study.spec.study_spec import load_spec
from tests.conftest import ROOT

TABLES = ROOT / "reports" / "lesson_grid" / "tables"


@pytest.fixture(scope="module")
def recomputed():
    spec = load_spec(ROOT / "ablations" / "lesson_grid.yaml")
    levels = {f"level_{f}": str for f in spec.factors}
    tidy = pd.read_csv(TABLES / "trials.csv", dtype=levels)
    rule = pd.read_csv(TABLES / "outcome_rule.csv").iloc[0]
    failure_rule = FailureRule(float(rule["majority_rate"]), float(rule["margin"]), str(rule["source"]),
                               int(rule["validation_size"]), float(rule["learn_share"]))
    return analyse(spec, tidy, TrialConfig(**LESSON_FIRST_MODEL), failure_rule), levels


def test_conditional_effects_recompute_from_trials_csv(recomputed):
    result, _ = recomputed
    committed = pd.read_csv(TABLES / "conditional_effects.csv", dtype={"level": str, "reference": str,
                                                                         "moderator_level": str})
    ours = result.conditional
    assert len(ours) == len(committed) > 50
    keys = ["factor", "level", "reference", "moderator", "moderator_level"]
    merged = committed.merge(ours, on=keys, suffixes=("_committed", "_now"), validate="one_to_one")
    assert len(merged) == len(committed)
    for column in ("effect", "ci_low", "ci_high", "p_holm"):
        assert np.allclose(merged[f"{column}_committed"], merged[f"{column}_now"], rtol=1e-9, atol=1e-12,
                           equal_nan=True), column
    assert (merged["sign_change_committed"] == merged["sign_change_now"]).all()
    assert merged["sign_change_committed"].any()  # the grid has qualitative interactions, and the table says so


def test_top_group_recomputes_from_trials_csv(recomputed):
    result, levels = recomputed
    committed = pd.read_csv(TABLES / "top_group.csv", dtype={f.removeprefix("level_"): str for f in levels})
    ours = result.top.table.reset_index(drop=True)
    assert list(committed["in_top_group"]) == list(ours["in_top_group"])
    factors = [f.removeprefix("level_") for f in levels]
    assert committed[factors].astype(str).equals(ours[factors].astype(str))
    assert np.allclose(committed["mean"], ours["mean"]) and np.allclose(committed["p_holm"], ours["p_holm"],
                                                                        equal_nan=True)
    assert result.top.seeds == "confirm" and committed["in_top_group"].sum() >= 1
