"""A trial's dataset inputs survive the race two workers run when they log the same new dataset at once."""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from study.config import TrialConfig
from study.data.splits import SplitCache
from study.tracking.runs import TrialRun, log_study_data
from tests.conftest import run_datasets


def test_a_collision_on_a_new_dataset_is_retried_and_the_run_keeps_its_inputs(tmp_path, monkeypatch):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = mlflow.create_experiment("inputs")
    run = TrialRun.start(exp_id, TrialConfig(dataset="digits"), {}, "inputs")
    real = run.client.log_inputs
    calls = []

    def collides_once(*args, **kwargs):  # what PostgreSQL raises when another worker inserted the dataset first
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException("duplicate key value violates unique constraint \"dataset_pk\"")
        return real(*args, **kwargs)

    monkeypatch.setattr(run.client, "log_inputs", collides_once)
    splits = SplitCache()
    run.log_data(splits.dataset("digits"), splits.inputs("digits", "holdout", None))
    inputs = mlflow.MlflowClient().get_run(run.run_id).inputs.dataset_inputs
    assert len(calls) == 2 and {tag.value for i in inputs for tag in i.tags if tag.key == "mlflow.data.context"} == \
        {"training", "validation", "test"}


def test_a_study_run_gets_every_split_its_trials_use_once(tmp_path):
    """Two training subsets share their validation and test rows: 2 training inputs, 1 validation, 1 test.
    `validation: test` validates on the test rows, one dataset that MLflow links to a run once (as `test`)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = mlflow.create_experiment("study_data")
    configs = [TrialConfig(dataset="digits", train_subset=200, dropout=0.0),
               TrialConfig(dataset="digits", train_subset=200, dropout=0.5),  # same data as the first
               TrialConfig(dataset="digits", train_subset=400),
               TrialConfig(dataset="digits", validation="test")]
    parent = mlflow.MlflowClient().create_run(exp_id).info.run_id
    splits = SplitCache()
    log_study_data(parent, splits, configs)
    shown = run_datasets(mlflow.MlflowClient().get_run(parent))
    trials = set()
    for config in configs:
        run = TrialRun.start(exp_id, config, {}, "study_data")
        run.log_data(splits.dataset("digits"), splits.inputs("digits", config.validation, config.train_subset))
        trials |= run_datasets(mlflow.MlflowClient().get_run(run.run_id))
    assert {(name, digest) for name, digest, _ in shown} == {(name, digest) for name, digest, _ in trials}
    assert sorted(context for _, _, context in shown) == ["test", "training", "training", "training", "validation"]
