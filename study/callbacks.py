"""Keras callbacks of our own (imports Keras: load only after the backend is chosen)."""

from __future__ import annotations

import math

import keras


class LearningRateRecorder(keras.callbacks.Callback):
    """Adds the learning rate actually used in each epoch to the epoch logs.

    Must come after the schedule callbacks, which set the rate in on_epoch_begin.
    """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self._lr


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training as soon as the loss is NaN/inf (checked per executed step)."""

    def __init__(self) -> None:
        super().__init__()
        self.diverged = False

    def _check(self, logs: dict | None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = True
            self.model.stop_training = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check(logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check(logs)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics to the active MLflow run with step=epoch, as they happen,
    so the MLflow UI shows a trial's curves while it trains."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from study.tracking import log_epoch

        logs = logs or {}
        log_epoch({n: float(logs[n]) for n in self.names if n in logs}, epoch)
