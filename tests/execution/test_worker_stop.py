"""A stop request that lands between trials still ends the worker as interrupted (exit 130, not 1)."""

from __future__ import annotations

import mlflow
import pytest

from study.execution.grid_source import GridSource
from study.execution.signals import StopFlag
from study.execution.sources import WorkerOptions
from study.execution.worker import run_worker
from study.queue.trial_queue import TrialQueue
from study.spec.study_spec import load_spec
from tests.conftest import run_datasets, write_spec

TWO_TRIALS = """
name: stop_between
epochs: 1
validation: holdout
train_subset: 300
seeds: [0]
base: {units: 16}
factors:
  activation: [sigmoid, relu]
"""


class StopAfterFirstTrial(GridSource):
    """The real grid source; the stop request arrives just after the first trial is recorded,
    which is where a Ctrl-C lands when it comes after a group's last batch."""

    def __init__(self, spec, stop: StopFlag) -> None:
        super().__init__(spec)
        self.stop = stop

    def describe(self, queue, finished):
        self.stop.event.set()
        return super().describe(queue, finished)


@pytest.mark.integration
def test_a_stop_between_trials_reports_interrupted_and_leaves_the_rest_queued(tmp_path, data_dir):
    spec = load_spec(write_spec(tmp_path / "two.yaml", TWO_TRIALS))
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", spec.name)
    stop = StopFlag()  # not installed: the test sets it, no signal handler is touched
    source = StopAfterFirstTrial(spec, stop)
    assert source.enqueue(queue) == 2
    options = WorkerOptions(data_dir=str(data_dir), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                            group_size=1)
    summary = run_worker(spec, queue, source, options, stop=stop)
    assert summary.counts == {"completed": 1}
    assert summary.interrupted, "a study left half-trained must not end as if it were done"
    assert queue.has_work() and not source.done(queue)
    # `study worker`'s own run shows the study's data, as its trial's run does.
    mlflow.set_tracking_uri(options.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[spec.name], output_format="list")
    worker_run = next(r for r in runs if r.data.tags["study_role"] == "study")
    trial_run = next(r for r in runs if r.data.tags["study_role"] == "trial")
    assert run_datasets(worker_run) == run_datasets(trial_run) and len(run_datasets(worker_run)) == 3
