"""The report of a tiny real study (Keras -> MLflow SQLite -> report): every section,
every figure a real PNG, the tidy exports, and the lesson's figures checked against
the code that trained the trials."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli, write_spec

SPEC = """
name: report_tiny
lesson: true
epochs: 2
batch_size: 32
validation: holdout
train_subset: 500
seeds: [0, 1]
base: {units: 16, warmup_epochs: 1}
factors:
  init: [normal, he]
  schedule: [constant, warmup_cosine]
"""

SECTIONS = ("## What to pick", "## Findings", "## The lesson's claims", "## Where the answer depends on the other choices",
            "## Trials, failures and missing results", "## Leaderboard", "## Effects of each factor",
            "### Learning vs accuracy", "### No-ops", "### Power", "## Interactions and importance",
            "### Importance ranking", "### The 1 strongest two-way interactions", "## Ablation path",
            "## The lesson's figures, from our code", "### Initial weights: normal vs Xavier vs He, n = 256",
            "### Learning-rate schedules", "## How the numbers are computed", "## Reproducibility")
FIGURES = ("forest.png", "conditional_effects.png", "curves_init.png", "curves_schedule.png", "importance.png",
           "interaction_init_x_schedule.png", "ablation_path.png", "init_weights_kde.png", "learning_rates.png")
NUMBER = re.compile(r"[+-]?\d+\.\d+(?:e[+-]\d+)?(?: pp|%)?")


def assert_png(path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 150 and image.shape[1] > 150 and float(image.std()) > 0.01, path


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("report")
    spec = write_spec(root / "report_tiny.yaml", SPEC)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    reports = root / "reports"
    empty = run_cli("report", str(spec), "--tracking-uri", uri, "--reports-dir", str(reports), cwd=root)
    assert empty.returncode == 0, empty.stderr[-3000:]
    empty_readme = (reports / "report_tiny" / "README.md").read_text()
    done = run_cli("run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, "--reports-dir",
                   str(reports), cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return reports / "report_tiny", empty_readme


@pytest.mark.integration
def test_report_without_trials_says_what_is_missing(study):
    _, empty = study
    assert "Trials: 0 of 8 finished" in empty
    assert "No finished trials yet: run `python -m study run" in empty
    assert "### Initial weights" in empty  # the lesson's figures need no trials


@pytest.mark.integration
def test_report_has_every_section_and_figure(study):
    out, _ = study
    readme = (out / "README.md").read_text()
    for heading in SECTIONS:
        assert heading in readme, heading
    assert "Trials: 8 of 8 finished" in readme
    assert re.search(r"\| init +\| he vs normal +\| 2 blocks +\| [+-]\d+\.\d\d pp \[", readme)
    assert readme.index("## What to pick") < readme.index("(figures/forest.png)") < readme.index("## Findings")
    for name in FIGURES:
        assert_png(out / "figures" / name)
        assert f"(figures/{name})" in readme
    footer = readme[readme.index("## Reproducibility"):]
    for needle in ("hash `", "Keras backend: `tensorflow`", "keras 3.", "Machine(s):", "python -m study run",
                   "python -m study report", "bit for bit", "311 of the 432"):
        assert needle in footer, needle
    assert not re.search(r"(^|[^A-Za-z0-9_.])/(work|tmp|home|root)/", readme)  # no path of this machine


@pytest.mark.integration
def test_summary_numbers_are_in_the_tables(study):
    out, _ = study
    readme = (out / "README.md").read_text()
    start = readme.index("## Findings")
    end = readme.index("## The lesson's claims")
    summary, rest = readme[start:end], readme[end:]
    quoted = NUMBER.findall(summary)
    assert len(quoted) >= 15
    assert [n for n in quoted if n not in rest] == []


@pytest.mark.integration
def test_tidy_exports(study):
    out, _ = study
    trials = pd.read_parquet(out / "tables" / "trials.parquet")
    assert len(trials) == 8 and (out / "tables" / "trials.csv").read_text().count("\n") == 9
    assert {"run_id", "trial_key", "status", "seed", "level_init", "level_schedule", "final_val_accuracy",
            "best_val_accuracy", "test_accuracy", "learning_rate"} <= set(trials.columns)
    assert trials["seed"].dtype.kind == "i" and trials["learning_rate"].dtype.kind == "f"
    epochs = pd.read_parquet(out / "tables" / "epoch_metrics.parquet")
    core = epochs[epochs["metric"].isin(["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"])]
    assert len(core) == 8 * 2 * 5  # trials x epochs x (loss, accuracy, val_loss, val_accuracy, learning_rate)
    probes = epochs[~epochs.index.isin(core.index)]  # the rest: the mechanism probes, every epoch of every trial
    assert len(probes) > 0 and probes["metric"].str.match(r"(grad_norm|saturated|grad_ratio)").all()
    assert len(probes) % (8 * 2) == 0
    effects = pd.read_csv(out / "tables" / "effects_final_val_accuracy.csv")
    assert list(effects["pairs"]) == [4, 4] and list(effects["blocks"]) == [2, 2]
    assert (effects["ci_low"] <= effects["diff"]).all() and (effects["diff"] <= effects["ci_high"]).all()
    assert effects["p_holm"].between(0, 1).all()


@pytest.mark.integration
def test_effects_leaderboard_and_claims_tables_are_also_latex(study):
    out, _ = study
    for name in ("effects_final_val_accuracy", "leaderboard", "claims"):
        text = (out / "tables" / f"{name}.tex").read_text()
        assert (out / "tables" / f"{name}.csv").is_file()
        assert text.startswith("\\begin{tabular}") and "\\toprule" in text and "\\bottomrule" in text, name
    effects = (out / "tables" / "effects_final_val_accuracy.tex").read_text()
    assert "$\\Delta$ val acc [95\\% CI]" in effects and "he vs normal" in effects  # the README's table
    assert "`tables/*.tex`" in (out / "README.md").read_text()


@pytest.mark.integration
def test_lesson_figures_come_from_the_trained_code(study):
    out, _ = study
    rates = pd.read_csv(out / "tables" / "learning_rates.csv")
    warm = rates[rates["setup"].str.startswith("warmup_cosine")].sort_values("epoch")
    # the lesson's formula: learning rate 0 for the whole first epoch, then the peak; and it really trained so
    assert list(warm["planned"]) == [0.0, 0.01]
    assert np.allclose(warm["logged_min"], warm["planned"], rtol=1e-6, atol=1e-9)
    assert np.allclose(warm["logged_max"], warm["planned"], rtol=1e-6, atol=1e-9)
    assert (warm["trials"] == 4).all()
    init = pd.read_csv(out / "tables" / "init_weights.csv").set_index("init")
    assert np.allclose(init["sampled std"], init["theoretical std"], rtol=0.03)
    assert init.loc["normal", "sampled std"] > 10 * init.loc["he", "sampled std"]


def test_the_mechanism_claim_is_printed_in_log10_units_not_percentage_points():
    from study.analysis.gradients import GRADIENT_RATIO
    from study.lesson.claims_section import claims_table

    row = {"claim": "ReLU fixes vanishing gradients", "scope": "whole grid", "contrast": "activation: relu vs sigmoid",
           "condition": "", "measure": "log10 gradient norm ratio", "metric": GRADIENT_RATIO, "diff": 0.8,
           "ci_low": 0.5, "ci_high": 1.1, "unit": "blocks", "n": 12, "verdict": "supported", "holds": "",
           "reverses": "", "why": ""}
    accuracy = {**row, "metric": "val_accuracy", "measure": "val accuracy"}
    table = claims_table(pd.DataFrame([row, accuracy]))
    assert table.loc[0, "Δ [95% CI]"] == "+0.80 log10 [+0.50, +1.10] (x6.31)"
    assert table.loc[1, "Δ [95% CI]"] == "+80.00 pp [+50.00, +110.00]"
