"""The confirm stage through the real CLI: after the main trials, the selected configs run again on new
seeds, once each, with two worker processes; a rerun trains nothing; status and the report count them."""

from __future__ import annotations

import mlflow
import pytest

from study.analysis.confirm import confirm_trials_from_runs
from study.analysis.leaderboard import best_config
from study.analysis.runs import trials_frame
from study.spec.study_spec import load_spec
from study.tracking.store import configure
from tests.conftest import run_cli, write_spec

SPEC = """
name: confirm_tiny
lesson: true  # the path starts at the lesson's first model
epochs: 1
batch_size: 32
validation: holdout
train_subset: 300
seeds: [0, 1]
base: {units: 16, init: xavier}
factors:
  activation: [sigmoid, relu]
  optimizer:
    - sgd: {optimizer: sgd, learning_rate: 0.01}
    - adam: {optimizer: adam, learning_rate: 0.001}
confirm:
  top_k: 1
  seeds: [7, 8]
"""


@pytest.mark.integration
@pytest.mark.slow
def test_confirm_stage_runs_once_after_the_main_trials(tmp_path, data_dir):
    spec_path = write_spec(tmp_path / "confirm_tiny.yaml", SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["run", str(spec_path), "--data-dir", str(data_dir), "--tracking-uri", uri, "--storage", storage,
            "--reports-dir", str(tmp_path / "reports")]
    first = run_cli(*args, "--workers", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "8 trials, 0 already done, 8 to run (then the confirm stage)" in first.stdout

    spec = load_spec(spec_path)
    configure(uri)
    runs = trials_frame("confirm_tiny")
    expected = confirm_trials_from_runs(spec, runs[runs["seed"].isin(spec.seeds)])
    # the best config and the path from the lesson's first model (relu, sgd) to it, each on seeds 7 and 8
    assert 2 <= len(expected) <= 6 and {t.config.seed for t in expected} == {7, 8}
    confirm_keys = {t.key for t in expected}
    assert set(runs["trial_key"]) == {t.key for t in spec.unique_trials()} | confirm_keys
    mlflow.set_tracking_uri(uri)
    every_run = mlflow.search_runs(experiment_names=["confirm_tiny"], filter_string="tags.study_role = 'trial'")
    assert every_run["tags.trial_key"].value_counts().max() == 1  # each trial trained exactly once
    assert f"done: completed {8 + len(expected)}" in first.stdout

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{8 + len(expected)} trials, {8 + len(expected)} already done, 0 to run" in again.stdout

    status = run_cli("status", str(spec_path), "--storage", storage, cwd=tmp_path)
    assert f"trials: {8 + len(expected)}/{8 + len(expected)} done" in status.stdout, status.stdout
    report = (tmp_path / "reports" / "confirm_tiny" / "README.md").read_text()
    assert f"Finished trials: {8 + len(expected)} of {8 + len(expected)} expected, {len(expected)} of them on the " \
           "confirm seeds" in report
    assert "**Confirmed top:**" in report and "measured on the confirm seeds [7, 8]" in report
    # a tuning spec's base_from picks what the report's leaderboard puts first (the spec stored with the runs
    # tells the main seeds from the confirm seeds)
    import pandas as pd

    top = pd.read_csv(tmp_path / "reports" / "confirm_tiny" / "tables" / "leaderboard.csv").iloc[0]
    best = best_config("confirm_tiny")
    assert top["stage"] == "confirmed" and (best.activation, best.optimizer) == (top["activation"], top["optimizer"])
