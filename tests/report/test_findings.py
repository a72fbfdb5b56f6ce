"""The plain-language summary on synthetic studies: right claims, and only numbers the tables show."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.failures import FailureRule
from study.analysis.study_analysis import Analysis, analyse
from study.config import TrialConfig
from study.report.format import without_machine_paths
from study.report.sections import findings
from study.lesson.claims_section import claims_section
from study.report.sections.decomposition import interactions_section
from study.report.sections.advice import advice_section
from study.report.sections.conditional import conditional_section
from study.report.sections.effects import effects_section
from study.report.sections.results import divergence_section, leaderboard_section, path_section
from study.spec.study_spec import parse_spec
from tests.synthetic import MAJORITY, fail_where, make_noop, synthetic

SPEC = parse_spec({"name": "synthetic", "seeds": [0, 1, 2], "factors": {
    "init": ["normal", "xavier", "he"], "optimizer": ["sgd", "adam"], "dropout": [0.0, 0.2]}})
RULE = FailureRule(MAJORITY, source="the labels")
NUMBER = re.compile(r"[+-]?\d+\.\d+(?:e[+-]\d+)?(?: pp|%)?")


def render(result: Analysis, out) -> str:
    """Every section that shows a table, as the report orders them (figures go to `out`)."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return "\n".join([
        advice_section(result, out),
        claims_section(result, out),
        conditional_section(result, out),
        divergence_section(result, result.frame, [], out),
        leaderboard_section(result, out),
        effects_section(result, pd.DataFrame(), out),
        interactions_section(result, out),
        path_section(result, out),
    ])


def study_with(frame: pd.DataFrame, spec=SPEC) -> Analysis:
    return analyse(spec, frame, TrialConfig(), RULE)


@pytest.fixture(scope="module")
def clean():
    return study_with(synthetic(np.random.default_rng(21)))


@pytest.fixture(scope="module")
def study():
    """With failures (init=normal never learns with SGD), two trials that diverged before any finite epoch
    (they count at chance and as not learning) and a no-op dropout level."""
    frame = make_noop(synthetic(np.random.default_rng(21), interaction=0.03), "dropout", "0.2", "0.0")
    frame = fail_where(frame, init="normal", optimizer="sgd")
    bad = frame.index[(frame["level_init"] == "xavier") & (frame["level_optimizer"] == "adam")][:2]
    frame.loc[bad, "status"] = "diverged"
    frame.loc[bad, ["final_val_accuracy", "test_accuracy", "final_val_loss"]] = math.nan
    return study_with(frame)


def sentence(result, start: str) -> str:
    return next(s for s in findings.summary_sentences(result) if s.startswith(start))


def test_claims_follow_the_tests(clean):
    sentences = findings.summary_sentences(clean)
    he = sentence(clean, "`init=he`")
    assert he.startswith("`init=he` raises val accuracy by +") and "over `init=normal` (Holm p " in he
    assert "; 4 blocks;" in he
    assert "not significant after Holm's correction" in sentence(clean, "`dropout=0.2`")
    # dropout is a null factor: its two levels tie at the top, so no single winner is named
    assert re.match(r"What to pick: \d configs cannot be told apart from the best on the main seeds", sentences[0])
    assert "`dropout` (0.0/0.2)" in sentences[0] and "winner" in sentences[0]
    assert any(s.startswith("The saturated decomposition") and "in seed noise" in s for s in sentences)
    assert any("`init=xavier, optimizer=sgd, dropout=0.0`" in s for s in sentences)  # the path's start
    assert any(s.startswith("Every trial learned") for s in sentences)
    assert "No trial diverged (0 of 36)." in sentences


def test_failures_noops_and_divergence_are_named(study):
    sentences = findings.summary_sentences(study)
    assert any(s.startswith("8 of 36 trials fail (val accuracy at most 15.64%") for s in sentences)  # 6 planted + 2
    adam = sentence(study, "`optimizer=adam`")
    assert "on the share of trials that fail -" in adam and "among trials that learn +" in adam
    dropout = sentence(study, "`dropout=0.2`")
    assert "identical in every result" in dropout and "no test is reported" in dropout and "significant" not in dropout
    assert any("2 of 36 trials diverged" in s and "chance accuracy 10.00%" in s for s in sentences)


def test_every_number_in_the_summary_appears_in_a_table(study, tmp_path):
    summary = findings.summary_section(study)
    tables = render(study, tmp_path)
    quoted = NUMBER.findall(summary)
    assert len(quoted) > 20
    missing = [n for n in quoted if n not in tables]
    assert not missing, f"numbers in the summary but in no table: {missing}"


def test_confirm_seeds_decide_the_top_and_measure_the_path(tmp_path):
    """Configs picked on the main seeds are shown with their confirm-seed numbers, ranked by those."""
    spec = parse_spec({**SPEC.raw, "confirm": {"top_k": 2, "seeds": [5, 6, 7]}})
    frame = synthetic(np.random.default_rng(22), seeds=8)
    frame = frame[frame["seed"].isin([0, 1, 2, 5, 6, 7])]
    main = study_with(frame[frame["seed"] < 3], spec).configs
    picked = main.head(2)[["init", "optimizer", "dropout"]].apply(tuple, axis=1).tolist()
    chosen = frame["seed"] < 3
    for levels in picked + [("xavier", "sgd", "0.0"), ("xavier", "adam", "0.0"), ("he", "adam", "0.0")]:
        chosen |= ((frame["level_init"] == levels[0]) & (frame["level_optimizer"] == levels[1])
                   & (frame["level_dropout"] == levels[2]))
    result = study_with(frame[chosen], spec)
    board = result.configs
    assert list(board["stage"][:2]) == ["confirmed"] * 2 and (board["n"][:2] == 3).all()
    assert sorted(board.head(2)[["init", "optimizer", "dropout"]].apply(tuple, axis=1)) == sorted(picked)
    assert board["final_val_accuracy_mean"].iloc[0] >= board["final_val_accuracy_mean"].iloc[1]
    assert len(result.frame) == 36  # the factorial analyses use the main seeds only
    assert result.path_seeds == "confirm" and (result.path["n"] == 3).all()
    text = render(result, tmp_path)
    assert "**Confirmed top:**" in text and "measured on the confirm seeds [5, 6, 7]" in text
    assert "cannot be told apart from the best on its confirm seeds" in findings.summary_sentences(result)[0]
    assert result.top.seeds == "confirm" and set(result.top.table["n"]) == {3}


def test_one_seed_and_no_factor_studies_degrade_with_a_reason(tmp_path):
    one_seed = synthetic(np.random.default_rng(22), seeds=1)
    result = study_with(one_seed)
    text = render(result, tmp_path)
    assert "no interval over seeds (n/a)" in text and "one seed per config" in text
    assert "Caution: 1 seed(s) only" in findings.summary_section(result)
    flat = parse_spec({"name": "flat", "seeds": [0, 1]})
    base = synthetic(np.random.default_rng(23), seeds=2, levels={"init": ["xavier"]},
                     effects={"init": {"xavier": 0.0}}).drop(columns="level_init")
    result = study_with(base, flat)
    text = render(result, tmp_path / "flat")
    assert "nothing to compare" in text and "No factors: no path" in text
    assert findings.summary_sentences(result)[0].startswith("The study's one configuration reaches")


def test_reports_carry_no_machine_paths(tmp_path):
    text = ("Data: npz /work/main/.cache/mnist.npz; `python -m study run x.yaml --tracking-uri "
            "sqlite:////home/me/proj/mlflow.db`; http://127.0.0.1:5000/#/experiments; ablations/x.yaml; "
            f"{tmp_path}/reports/x")
    clean = without_machine_paths(text, root=tmp_path)
    assert not re.search(r"(^|[^A-Za-z0-9_.])/(work|tmp|home|root)/", clean), clean
    assert "…/.cache/mnist.npz" in clean and "sqlite:///…/proj/mlflow.db" in clean
    assert "http://127.0.0.1:5000/#/experiments" in clean and "ablations/x.yaml" in clean
    assert "; reports/x" in clean
