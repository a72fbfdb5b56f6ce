"""Your model, your data, your factors, through the real CLI: a builder from a module outside the package (on
PYTHONPATH), its own hyperparameters as factors, on digits and on an npz file; MLflow runs and the report checked.
The same spec with a typo in a factor, a builder that returns no Keras model, or an npz with mismatched lengths
exits 2 naming the problem and creates nothing."""

from __future__ import annotations

import os
import textwrap

import mlflow
import numpy as np
import pandas as pd
import pytest

from study.data.digits import load_digits_dataset
from tests.conftest import ROOT, run_cli

MODULE = '''
"""A user's models, outside the study package."""
import keras
from keras import layers


def build(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(hp.filters, hp.kernel_size, padding="same")(inputs)
    if hp.batch_norm:
        x = layers.BatchNormalization()(x)
    x = layers.Activation(hp.activation)(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def not_a_model(hp, input_shape, num_classes):
    return {"filters": hp.filters}
'''

SPEC = """
name: {name}
model: {model}
dataset: {dataset}
epochs: 2
batch_size: 64
seeds: [0]
hyperparameters:
  filters: {{type: int, low: 1, default: 4}}
  kernel_size: {{type: choice, choices: [3, 5], default: 3}}
base: {{optimizer: adam, learning_rate: 0.003}}
factors:
  filters: [4, 8]
  batch_norm: [false, true]
"""


@pytest.fixture()
def user(tmp_path):
    """A module of builders in its own directory, and the environment that puts it on PYTHONPATH."""
    mods = tmp_path / "my_models"
    mods.mkdir()
    (mods / "user_cnn_cli.py").write_text(textwrap.dedent(MODULE))
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{mods}"}


def write_npz(path, lengths_match: bool = True) -> None:
    digits = load_digits_dataset()
    x, y = digits.x_train, digits.y_train
    np.savez(path, x_train=x[:1000], y_train=y[:1000] if lengths_match else y[:999], x_val=x[1000:], y_val=y[1000:],
             x_test=digits.x_test, y_test=digits.y_test)


def run(workdir, spec_name, text, env, *more):
    spec = workdir / f"{spec_name}.yaml"
    spec.write_text(text)
    return run_cli("run", str(spec), "--tracking-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--storage",
                   f"sqlite:///{workdir / 'optuna.db'}", "--reports-dir", str(workdir / "reports"), *more,
                   cwd=workdir, env=env)


def trial_runs(workdir, study):
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[study], filter_string="tags.study_role = 'trial'",
                              output_format="list")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "npz"])
def test_a_user_model_ablates_its_own_factors_through_the_cli(dataset, tmp_path, user):
    source = "digits"
    if dataset == "npz":
        write_npz(tmp_path / "arrays.npz")
        source = "npz:arrays.npz"
    name = f"own_{dataset}"
    text = SPEC.format(name=name, model="user_cnn_cli:build", dataset=source)
    first = run(tmp_path, name, text, user)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "builds a keras.Model for each of the 4 model structure(s)" in first.stdout
    assert "completed 4" in first.stdout

    runs = trial_runs(tmp_path, name)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["trial_status"] for r in runs} == {"completed"}
    seen = set()
    for run_ in runs:
        params = run_.data.params
        assert params["model"] == "user_cnn_cli:build" and params["dataset"] == source
        assert params["hp.kernel_size"] == "3" and "hparams" not in params
        seen.add((params["hp.filters"], params["batch_norm"], run_.data.tags["level.filters"]))
        assert 0.0 < run_.data.metrics["test_accuracy"] <= 1.0
    assert seen == {("4", "False", "4"), ("4", "True", "4"), ("8", "False", "8"), ("8", "True", "8")}

    out = tmp_path / "reports" / name
    report = (out / "README.md").read_text()
    assert "Trials: 4 of 4 finished" in report
    assert "- Model: `user_cnn_cli:build` on " in report and "`filters` (int, default 4)" in report
    assert "| filters " in report and "## Leaderboard" in report and "## Ablation path" in report
    assert "from the base config's level of each factor (filters=4, batch_norm=false;" in report
    assert "lesson" not in report.lower()  # the lesson's sections belong to the lesson's model on MNIST only
    trials = pd.read_csv(out / "tables" / "trials.csv")
    assert sorted(trials["filters"]) == [4, 4, 8, 8] and set(trials["kernel_size"]) == {3}

    again = run(tmp_path, name, text, user, "--no-report")
    assert again.returncode == 0 and "4 already done, 0 to run" in again.stdout, again.stderr[-2000:]


@pytest.mark.integration
@pytest.mark.parametrize("case, words", [
    ("typo", "typo.yaml: factors.filtres: unknown factor; did you mean 'filters'?"),
    ("not_a_model", "not_a_model.yaml: model: user_cnn_cli:not_a_model returned dict, not a keras.Model"),
    ("npz_lengths", "arrays.npz: x_train has 1000 examples but y_train has 999 labels"),
])
def test_bad_model_factor_or_data_exits_2_and_creates_nothing(case, words, tmp_path, user):
    text = SPEC.format(name=case, model="user_cnn_cli:build", dataset="digits")
    if case == "typo":
        text = text.replace("  filters: [4, 8]", "  filtres: [4, 8]")
    elif case == "not_a_model":
        text = text.replace("user_cnn_cli:build", "user_cnn_cli:not_a_model")
    else:
        write_npz(tmp_path / "arrays.npz", lengths_match=False)
        text = text.replace("dataset: digits", "dataset: npz:arrays.npz")
    before = set(os.listdir(tmp_path))
    result = run(tmp_path, case, text, user)
    assert result.returncode == 2, result.stderr[-2000:]
    assert words in result.stderr, result.stderr[-2000:]
    assert set(os.listdir(tmp_path)) - before == {f"{case}.yaml"}  # no store, queue, artifacts or report


TUNE = """
name: own_tune
model: user_cnn_cli:build
dataset: digits
epochs: 1
batch_size: 64
hyperparameters:
  filters: {type: int, low: 1, default: 4}
  kernel_size: {type: choice, choices: [3, 5], default: 3}
base: {optimizer: adam, learning_rate: 0.003}
search_space:
  filters: {low: 2, high: 16, log: true}
n_trials: 3
sampler: {name: random, seed: 0}
pruner: none
"""


@pytest.mark.integration
@pytest.mark.slow
def test_optuna_tunes_a_user_hyperparameter(tmp_path, user):
    import optuna

    spec = tmp_path / "own_tune.yaml"
    spec.write_text(TUNE)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli("tune", str(spec), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "--reports-dir", str(tmp_path / "reports"), "--no-retrain", cwd=tmp_path, env=user)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="own_tune", storage=storage).get_trials()
    assert len(trials) == 3 and all(isinstance(t.params["filters"], int) and 2 <= t.params["filters"] <= 16
                                    for t in trials)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["own_tune"], filter_string="tags.study_role = 'tune_trial'",
                              output_format="list")
    assert sorted(int(r.data.params["hp.filters"]) for r in runs) == sorted(t.params["filters"] for t in trials)
    assert "`filters`" in (tmp_path / "reports" / "own_tune" / "README.md").read_text()
