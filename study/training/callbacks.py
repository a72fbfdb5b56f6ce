"""Keras callbacks of our own (imports Keras: load only after the backend is chosen)."""

from __future__ import annotations

import math

import keras

from study.core.errors import Interrupted
from study.training.results import is_epoch_metric


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


class BestWeights(keras.callbacks.Callback):
    """Keeps in memory the weights of the epoch with the lowest finite val_loss (with a
    finite training loss too): exactly the epoch `study.training.results.summarize_history` reports as
    `final_*`, whose model is then tested and saved.

    Why not ModelCheckpoint(save_best_only=True): it writes an .h5 file on every
    improving epoch, ~55 ms each on this machine (8% of a JAX trial), to read it back
    once. Keeping the arrays in memory is what EarlyStopping(restore_best_weights) does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.best = math.inf
        self.epoch: int | None = None
        self.weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        loss, val_loss = logs.get("loss"), logs.get("val_loss")
        if loss is None or val_loss is None or not (math.isfinite(loss) and math.isfinite(val_loss)):
            return
        if val_loss < self.best:
            self.best, self.epoch, self.weights = float(val_loss), epoch, self.model.get_weights()


class HooksCallback(keras.callbacks.Callback):
    """Tells a trial's TrialHooks (study.training.executors.base) about each epoch, and stops the
    trial when `should_stop` says so (Optuna's pruner, optuna-integration's KerasPruningCallback idea).

    It stops with `stop_training` rather than raising inside `fit`, so the trial still returns
    its history and its run is closed (as `pruned`) by the caller. The last epoch is reported
    but never asked: nothing is left to save, and a trial that trained its whole budget is a
    complete result. Must come after LearningRateRecorder and ProbeCallback, which add to the logs.
    """

    def __init__(self, hooks, epochs: int) -> None:  # noqa: ANN001 - TrialHooks
        super().__init__()
        self.hooks = hooks
        self.epochs = epochs
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {n: float(v) for n, v in (logs or {}).items() if is_epoch_metric(n)}
        self.hooks.on_epoch_end(epoch, logs)
        if epoch + 1 != self.epochs and self.hooks.should_stop(epoch, logs):
            self.stopped = True
            self.model.stop_training = True


class StopOnRequest(keras.callbacks.Callback):
    """Raises `Interrupted` at the next batch once `event` is set (by SIGINT/SIGTERM).

    The signal handler only sets the flag; stopping here, in Python between two
    compiled steps, never tears a database write or a TF call in half.
    """

    def __init__(self, event) -> None:  # noqa: ANN001 - threading.Event
        super().__init__()
        self.event = event

    def _check(self) -> None:
        if self.event.is_set():
            raise Interrupted()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._check()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check()
