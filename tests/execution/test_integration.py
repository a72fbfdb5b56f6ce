"""A tiny study through the real stack: CLI -> Keras -> MLflow (SQLite) -> report, on both backends."""

from __future__ import annotations

import mlflow
import pytest

from tests.conftest import run_cli, run_datasets, write_spec
from tests.execution.test_quiet import assert_quiet
from tests.execution.test_workers import ctrl_c_while_frozen, freeze_worker_mid_trial, start_cli

TINY = """
name: tiny_{backend}
epochs: 1
batch_size: 32
validation: holdout
train_subset: 300
seeds: [0]
backend: {backend}
base: {{units: 16}}
factors:
  activation: [sigmoid, relu]
  optimizer:
    - sgd: {{optimizer: sgd, learning_rate: 0.01}}
    - adam: {{optimizer: adam, learning_rate: 0.001}}
"""

SLOW = """
name: slow
epochs: 8
validation: holdout
train_subset: 2000
seeds: [0]
factors:
  activation: [sigmoid, relu]
"""


def trial_runs(uri: str, study: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[study], filter_string="tags.study_role = 'trial'",
                              output_format="list")


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_tiny_study_end_to_end_and_resume(backend, tmp_path, data_dir):
    spec = write_spec(tmp_path / "tiny.yaml", TINY.format(backend=backend))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri,
            "--reports-dir", str(tmp_path / "reports")]
    figures = backend == "tensorflow"  # the per-trial learning-curve PNG is opt-in: one run with, one without
    first = run_cli(*args, *(["--trial-figures"] if figures else []), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[4/4]" in first.stdout and "completed 4" in first.stdout
    assert_quiet(first)  # no TensorFlow/absl/XLA banner, retracing warning or MLflow table note

    runs = trial_runs(uri, f"tiny_{backend}")
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["trial_key"] for r in runs}) == 4
    for run in runs:
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        assert params["backend"] == backend and params["units"] == "16" and params["train_subset"] == "300"
        assert tags["trial_status"] == "completed" and tags["version.keras"]
        assert 0.0 < metrics["final_val_accuracy"] <= 1.0 and 0.0 < metrics["test_accuracy"] <= 1.0
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [0]
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
        assert {"model", "history.json"} <= artifacts
        assert ("learning_curve.png" in artifacts) == figures
    parents = mlflow.search_runs(experiment_names=[f"tiny_{backend}"],
                                 filter_string="tags.study_role = 'study'", output_format="list")
    assert len(parents) == 1 and all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in runs)
    # The invocation's row in the runs table shows the study's data, as its trials' rows do.
    assert run_datasets(parents[0]) == set().union(*(run_datasets(r) for r in runs))
    assert {context for _, _, context in run_datasets(parents[0])} == {"training", "validation", "test"}

    report = (tmp_path / "reports" / f"tiny_{backend}" / "README.md").read_text()
    assert "Trials: 4 of 4 finished" in report
    assert "## Leaderboard" in report and "## Effects of each factor" in report
    assert "| activation | relu vs sigmoid" in report and "| optimizer  | adam vs sgd" in report
    assert (tmp_path / "reports" / f"tiny_{backend}" / "figures" / "curves_optimizer.png").stat().st_size > 1000
    assert (tmp_path / "reports" / f"tiny_{backend}" / "tables" / "trials.csv").read_text().count("\n") == 5

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 already done, 0 to run" in again.stdout
    assert len(trial_runs(uri, f"tiny_{backend}")) == 4


@pytest.mark.integration
def test_a_trial_whose_mlflow_run_was_deleted_is_trained_again_once(tmp_path, data_dir):
    """MLflow is the record: a key the queue calls complete but MLflow has no finished run of is trained
    again by the next run (not dropped as a duplicate of its old attempt), then counted done."""
    spec = write_spec(tmp_path / "tiny.yaml", TINY.format(backend="tensorflow").replace("tiny_tensorflow", "lost"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, "--no-report"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    deleted = trial_runs(uri, "lost")[0]
    mlflow.MlflowClient().delete_run(deleted.info.run_id)

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "3 already done, 1 to run" in again.stdout and "completed 1" in again.stdout
    runs = trial_runs(uri, "lost")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["trial_key"] for r in runs}) == 4, "each key once: the lost one trained again"
    assert deleted.info.run_id not in {r.info.run_id for r in runs}
    third = run_cli(*args, cwd=tmp_path)
    assert "4 already done, 0 to run" in third.stdout, third.stdout[-2000:]


@pytest.mark.integration
def test_invalid_spec_exits_2_and_writes_nothing(tmp_path, data_dir):
    spec = write_spec(tmp_path / "bad.yaml", TINY.format(backend="tensorflow").replace("sigmoid", "tanh"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.yaml: factors.activation[0]: 'tanh' is not allowed; allowed values: sigmoid, relu" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
    bad_data = run_cli("run", str(write_spec(tmp_path / "ok.yaml", TINY.format(backend="tensorflow"))),
                       "--data-dir", str(tmp_path), "--tracking-uri", uri, cwd=tmp_path)
    assert bad_data.returncode == 2 and "holds neither" in bad_data.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_marks_the_trial_interrupted_and_rerun_completes(tmp_path, data_dir):
    spec = write_spec(tmp_path / "slow.yaml", SLOW)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, log = start_cli("run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, "--no-report",
                          cwd=tmp_path)
    try:
        # Frozen with at most 3 of its 8 epochs logged, the trial is surely mid-training when the signal lands.
        pid, _ = freeze_worker_mid_trial(proc, log, f"sqlite:///{tmp_path / 'optuna.db'}", "slow", uri, epochs=4)
        assert pid == proc.pid  # one worker, in the command's own process
        ctrl_c_while_frozen(proc, pid, settle_s=0.5)
    finally:
        proc.kill()
    output = log.read_text()
    assert proc.returncode == 130, output[-2000:]
    assert "interrupted: the trials in progress are recorded as interrupted" in output
    runs = trial_runs(uri, "slow")
    assert len(runs) == 1
    assert runs[0].info.status == "KILLED" and runs[0].data.tags["trial_status"] == "interrupted"
    parent = mlflow.search_runs(experiment_names=["slow"], filter_string="tags.study_role = 'study'",
                                output_format="list")
    assert [p.info.status for p in parent] == ["KILLED"]

    rerun = run_cli("run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, "--no-report",
                    cwd=tmp_path, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    runs = trial_runs(uri, "slow")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 2 and len({r.data.tags["trial_key"] for r in finished}) == 2
    assert len(runs) == 3  # the interrupted run stays, marked as such
