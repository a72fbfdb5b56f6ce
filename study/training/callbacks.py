"""Keras callbacks of our own (imports Keras: load only after the backend is chosen)."""

from __future__ import annotations

import math

import keras

from study.core.errors import Interrupted
from study.training.results import is_epoch_metric


class PolicyCallback(keras.callbacks.Callback):
    """Runs a trial's EpochPolicy (study.training.recipe) inside `fit`, as the fused executor runs it per lane:
    sets each epoch's learning rate and logs it as `learning_rate`, keeps the kept epoch's weights in memory
    (`weights`), reduces the rate on a plateau and stops early. Must come first: the rate it logs is read
    by the callbacks after it.

    Why the weights in memory rather than ModelCheckpoint(save_best_only=True): that writes an .h5 file on
    every improving epoch, ~55 ms each on this machine (8% of a JAX trial), to read it back once; keeping the
    arrays is what EarlyStopping(restore_best_weights) does.
    """

    def __init__(self, policy) -> None:  # noqa: ANN001 - study.training.recipe.EpochPolicy
        super().__init__()
        self.policy = policy
        self.weights: list | None = None
        self._rate = policy.learning_rate

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._rate = self.policy.rate_for_epoch(epoch)
        optimizer = self.model.optimizer
        if float(keras.ops.convert_to_numpy(optimizer.learning_rate)) != self._rate:
            optimizer.learning_rate = self._rate

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        logs["learning_rate"] = self._rate
        loss, val_loss = logs.get("loss"), logs.get("val_loss")
        if loss is None or val_loss is None or not math.isfinite(float(loss)):
            return  # a non-finite loss: DivergenceMonitor ends the trial
        loss, val_loss = float(loss), float(val_loss)
        if self.policy.keeps(loss, val_loss):
            self.weights = self.model.get_weights()
        self.policy.end_epoch(epoch, val_loss)
        if self.policy.stopped:
            self.model.stop_training = True


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


class HooksCallback(keras.callbacks.Callback):
    """Tells a trial's TrialHooks (study.training.executors.base) about each epoch, and stops the
    trial when `should_stop` says so (Optuna's pruner, optuna-integration's KerasPruningCallback idea).

    It stops with `stop_training` rather than raising inside `fit`, so the trial still returns
    its history and its run is closed (as `pruned`) by the caller. The last epoch is reported
    but never asked: nothing is left to save, and a trial that trained its whole budget is a
    complete result. Must come after PolicyCallback and ProbeCallback, which add to the logs.
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
