"""The plain-language summary on synthetic studies: right claims, and only numbers the tables show."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from study.analysis.study_analysis import Analysis, analyse
from study.config import TrialConfig
from study.report.sections import findings
from study.report.sections import results as report_stats
from study.spec.study_spec import parse_spec
from tests.synthetic import synthetic

SPEC = parse_spec({"name": "synthetic", "seeds": [0, 1, 2], "factors": {
    "init": ["normal", "xavier", "he"], "optimizer": ["sgd", "adam"], "dropout": [0.0, 0.2]}})
NUMBER = re.compile(r"[+-]?\d+\.\d+(?:e[+-]\d+)?(?: pp|%)?")


def render(result: Analysis, out) -> str:
    """Every section that shows a table, as the report orders them (figures go to `out`)."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return "\n".join([
        report_stats.divergence_section(result, result.frame, [], out),
        report_stats.leaderboard_section(result, out),
        report_stats.effects_section(result, pd.DataFrame(), out),
        report_stats.interactions_section(result, out),
        report_stats.path_section(result, out),
    ])


@pytest.fixture(scope="module")
def clean():
    return analyse(SPEC, synthetic(np.random.default_rng(21), interaction=0.03), TrialConfig())


@pytest.fixture(scope="module")
def study():
    """With two trials that diverged before any finite epoch (they count at chance)."""
    frame = synthetic(np.random.default_rng(21), interaction=0.03)
    bad = frame.index[(frame["level_init"] == "normal") & (frame["level_optimizer"] == "adam")][:2]
    frame.loc[bad, "status"] = "diverged"
    frame.loc[bad, ["final_val_accuracy", "test_accuracy", "final_val_loss"]] = math.nan
    return analyse(SPEC, frame, TrialConfig())


def sentence(result, start: str) -> str:
    return next(s for s in findings.summary_sentences(result) if s.startswith(start))


def test_claims_follow_the_tests(clean):
    sentences = findings.summary_sentences(clean)
    he = sentence(clean, "`init=he`")
    assert he.startswith("`init=he` raises val accuracy by +") and "over `init=normal`" in he
    assert "not significant after Holm correction" in sentence(clean, "`dropout=0.2`")
    assert sentences[0].startswith("The best configuration by mean val accuracy is `init=he, optimizer=adam")
    assert any(s.startswith("By the ANOVA") and "`init x optimizer`" in s for s in sentences)
    # the path starts at the lesson's first model: xavier, sgd, no dropout
    assert any("`init=xavier, optimizer=sgd, dropout=0.0`" in s for s in sentences)
    assert "No trial diverged (0 of 36)." in sentences


def test_outliers_from_diverged_trials_temper_the_claim(study):
    """Two chance-level trials make the mean's interval cover 0 although the rank test
    is significant: the summary must not say `raises`."""
    row = study.effects["final_val_accuracy"].set_index("level").loc["he"]
    assert row["significant"] and row["ci_low"] < 0 and row["verdict"] == "test only"
    he = sentence(study, "`init=he`")
    assert "raises" not in he and "interval of the mean difference includes 0" in he
    assert any("2 of 36 trials diverged" in s and "chance accuracy 10.00%" in s
               for s in findings.summary_sentences(study))


def test_every_number_in_the_summary_appears_in_a_table(study, tmp_path):
    summary = findings.summary_section(study)
    tables = render(study, tmp_path)
    quoted = NUMBER.findall(summary)
    assert len(quoted) > 20
    missing = [n for n in quoted if n not in tables]
    assert not missing, f"numbers in the summary but in no table: {missing}"


def test_one_seed_and_no_factor_studies_degrade_with_a_reason(tmp_path):
    one_seed = synthetic(np.random.default_rng(22), seeds=1)
    result = analyse(SPEC, one_seed, TrialConfig())
    text = render(result, tmp_path)
    assert "no interval over seeds (n/a)" in text
    assert "Caution: 1 seed(s) only" in findings.summary_section(result)
    flat = parse_spec({"name": "flat", "seeds": [0, 1]})
    base = synthetic(np.random.default_rng(23), seeds=2, levels={"init": ["xavier"]},
                     effects={"init": {"xavier": 0.0}}).drop(columns="level_init")
    result = analyse(flat, base, TrialConfig())
    text = render(result, tmp_path / "flat")
    assert "nothing to compare" in text and "No factors: no path" in text
    assert findings.summary_sentences(result)[0].startswith("The study's one configuration reaches")
