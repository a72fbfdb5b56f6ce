"""The function executor: `train: package.module:function`, your own training code called per trial.

    def train(config, reporter) -> dict:   # e.g. {"val_accuracy": 0.97, "test_accuracy": 0.96}

`config` holds the trial's config fields and the spec's declared hyperparameters, read-only, by
attribute or key (`config.seed`, `config["alpha"]`); seeding is the function's own (`config.seed`).
`reporter.epoch(step, **metrics)` logs the metrics to the trial's MLflow run at `step` (the MLflow
UI charts them live), feeds Optuna's pruner during tuning, and returns True when the function
should stop: the worker was asked to stop (Ctrl-C, SIGTERM: the trial is then re-queued, not
recorded) or the pruner prunes the trial. `reporter.data` is the trial's data as the framework
splits it (`dataset`, `validation`, `train_subset`): x_train, y_train, x_val, y_val, x_test,
y_test; code that loads its own data ignores it. The returned metrics become the trial's final
metrics (study.training.user_results). The worker's heartbeat thread keeps the trial alive in the
queue while the function runs, whether it reports epochs or not.

Imports no Keras: a function that uses Keras imports it itself, after the backend the spec names
was set in the environment (study.training.backend.name_backend).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from study.config import TrialConfig
from study.core.errors import Interrupted
from study.data.arrays import Splits
from study.training.builders import Hyperparameters, resolve
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
from study.training.results import TrialResult
from study.training.user_results import ResultError, metric_values, user_result


class Reporter:
    """What a training function reports through, and learns from whether to stop."""

    def __init__(self, hooks: TrialHooks, stop: threading.Event, data: Splits, workdir: Path) -> None:
        self._hooks = hooks
        self._stop = stop
        self.data = data
        self.workdir = workdir  # a scratch directory of this trial (deleted after the batch)
        self.history: dict[str, list[float]] = {}
        self.interrupted = False  # the worker was asked to stop while the function ran
        self.pruned = False  # a hook (Optuna's pruner) ended the trial

    def epoch(self, step: int, **metrics: float) -> bool:
        """Log `metrics` at `step` (an epoch number, from 0); True when the function should stop now."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"reporter.epoch(step, ...): step must be an integer >= 0, got {step!r}")
        values = metric_values(metrics, "reporter.epoch")
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        self._hooks.on_epoch_end(step, values)
        if self._stop.is_set():
            self.interrupted = True
        elif not self.pruned and self._hooks.should_stop(step, values):
            self.pruned = True
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        """Whether the function was told to stop (it may also ask between epochs)."""
        return self.interrupted or self.pruned or self._stop.is_set()

    def __repr__(self) -> str:
        return f"Reporter(epochs reported: {max(map(len, self.history.values()), default=0)})"


class FunctionExecutor:
    """Calls the spec's training function once per trial of a batch, in turn."""

    name = "function"
    bit_identical_to_keras = False  # whatever the function computes is its own

    def run(self, batch: Batch, settings: ExecutionSettings) -> list[TrialResult]:
        results = []
        for index, (config, splits, hooks) in enumerate(zip(batch.configs, batch.splits, batch.hooks)):
            if batch.stop.is_set():
                raise Interrupted()
            workdir = batch.workdir / f"trial-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(train_function_trial(config, splits, hooks, batch.stop, workdir))
        return results


def train_function_trial(config: TrialConfig, splits: Splits, hooks: TrialHooks, stop: threading.Event,
                         workdir: Path) -> TrialResult:
    """One trial: call the function, turn what it returns into the trial's result."""
    function = resolve(config.train)
    reporter = Reporter(hooks, stop, splits, workdir)
    started = time.perf_counter()
    returned = function(Hyperparameters(config.values()), reporter)
    seconds = time.perf_counter() - started
    if reporter.interrupted:
        raise Interrupted()  # told to stop: whatever it returned is not the trial's result
    who = str(config.train)
    if returned is None:
        raise ResultError(f"{who} returned None; it must return a dict of final metrics with val_accuracy")
    return user_result(config, metric_values(returned, who), reporter.history, seconds, reporter.pruned, who)
