"""One trial's MLflow run as code running outside our training loop sees it (the command executor).

The command executor hands the run to a child process (MLFLOW_RUN_ID in its environment), then
reads back what the script logged, step by step, and records the outcome on the same run. Those
reads and writes are MLflow calls, so they live here (study/tracking owns MLflow), behind a small
handle the executor keeps per trial.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow


class TrialRun:
    """A trial's run, opened by the worker: tag it, hand it to a process, read its steps, keep its artifacts."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._client = mlflow.MlflowClient()

    def set_tag(self, key: str, value: str) -> None:
        self._client.set_tag(self.run_id, key, value)

    def env(self) -> dict[str, str]:
        """What a child process needs to log into this run with its own mlflow."""
        run = self._client.get_run(self.run_id)
        return {"MLFLOW_RUN_ID": self.run_id, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
                "MLFLOW_EXPERIMENT_ID": run.info.experiment_id}

    def reopen(self) -> None:
        """A script's mlflow may end the run when it exits; the worker still records the trial on it."""
        if self._client.get_run(self.run_id).info.status != "RUNNING":
            self._client.update_run(self.run_id, status="RUNNING")

    def log_artifact(self, path: Path) -> None:
        self._client.log_artifact(self.run_id, str(path))

    def steps(self, skip: Callable[[str], bool] = lambda name: False) -> dict[int, dict[str, float]]:
        """Every logged metric by step (those `skip` names left out)."""
        by_step: dict[int, dict[str, float]] = {}
        for name in self._client.get_run(self.run_id).data.metrics:
            if skip(name):
                continue
            for metric in self._client.get_metric_history(self.run_id, name):
                by_step.setdefault(metric.step, {})[name] = metric.value
        return by_step

    def latest(self) -> dict[str, float]:
        """Each metric's value at its latest step."""
        return dict(self._client.get_run(self.run_id).data.metrics)
