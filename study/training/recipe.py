"""A trial's recipe: how it trains apart from its model and data. The loss, the optimizer, the learning-rate
policy and the decisions taken between epochs (plateau, early stopping, which epoch's weights are kept).

`Recipe(config)` is built once per trial from its TrialConfig and is the only reader of the factors that act
on training, whatever the executor:
- the Keras executor compiles with `keras_loss()` and `optimizer()` and runs `policy()` in `fit` through one
  callback (study.training.callbacks.PolicyCallback);
- the fused executor puts `loss` in its XLA program (and its probes) and asks one `policy()` per trial
  between epochs.
So an executor cannot silently ignore a factor: tests/executors/conformance.py trains every declared factor
at two levels in each executor, and an executor that does not implement one declares it inert
(study.training.executors.registry) and is refused it in one line.

The policy reproduces Keras 3's own callbacks exactly, float32 rounding of the rate included:
LearningRateScheduler (the epoch schedules of study.training.schedules), ReduceLROnPlateau (min_delta 1e-4,
cooldown 0, min_lr 0), EarlyStopping (min_delta 0) on val_loss, and the kept epoch (lowest finite val_loss
with a finite training loss, study.training.results.summarize_history's best epoch). tests/training/
test_recipe.py trains a plateau, a warm-up and an early-stopping trial both ways and compares bit for bit.

Adding a factor (label_smoothing is the worked example): a `declare(...)` line in
study/config/trial_config.py and its use here. Imports Keras: load only after the backend is chosen
(study.training.backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from study.config import TrialConfig
from study.core.errors import InputError
from study.training.executors.registry import inert_problem
from study.training.schedules import EPOCH_SCHEDULES

PLATEAU_MIN_DELTA = 1e-4  # ReduceLROnPlateau's default
EARLY_STOPPING_MIN_DELTA = 0.0  # EarlyStopping's default


@dataclass(frozen=True)
class Recipe:
    """The loss, optimizer and epoch policy `config` asks for. Raises InputError when `config.executor`
    declares one of the config's set factors inert (it would train as if the factor were not set)."""

    config: TrialConfig

    def __post_init__(self) -> None:
        problem = inert_problem(self.config)
        if problem:
            raise InputError(problem)

    # ------------------------------------------------------------------ the loss

    def loss(self, y_true: Any, y_pred: Any) -> Any:
        """Per-example loss of integer labels against class probabilities (backend ops: pure, so jit- and
        vmap-able): `crossentropy` with the trial's label smoothing."""
        return crossentropy(y_true, y_pred, self.config.label_smoothing)

    def keras_loss(self) -> Any:
        """The loss to compile a Keras model with: Keras' own at the lesson's settings (bit for bit what the
        lesson's code trains), else this recipe's (saved with the model, study.training.recipe.RecipeLoss)."""
        if not self.config.label_smoothing:
            return keras.losses.SparseCategoricalCrossentropy()
        return RecipeLoss(label_smoothing=self.config.label_smoothing)

    # ------------------------------------------------------------------ the optimizer

    def optimizer(self) -> Any:
        """Plain SGD or Adam at the trial's learning rate; `weight_decay` is Keras' decoupled weight decay
        (0: none, as in the lesson)."""
        config = self.config
        options: dict[str, Any] = {"learning_rate": config.learning_rate}
        if config.weight_decay:
            options["weight_decay"] = config.weight_decay
        if config.optimizer == "sgd":
            return keras.optimizers.SGD(**options)
        if config.optimizer == "adam":
            return keras.optimizers.Adam(**options)
        raise ValueError(f"optimizer must be sgd or adam; got {config.optimizer!r}")

    # ------------------------------------------------------------------ between epochs

    def policy(self) -> EpochPolicy:
        """A fresh per-trial policy (it holds state: the current rate, patience counters, the best loss)."""
        return EpochPolicy(self.config)


def crossentropy(y_true: Any, y_pred: Any, label_smoothing: float = 0.0) -> Any:
    """Sparse categorical cross-entropy per example; with label smoothing e, against the smoothed one-hot
    target (1 - e) * one_hot + e / classes (what Keras' CategoricalCrossentropy(label_smoothing) does)."""
    if not label_smoothing:
        return ops.sparse_categorical_crossentropy(y_true, y_pred)
    labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])  # (batch,) or (batch, 1)
    target = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
    return keras.losses.categorical_crossentropy(target, y_pred, label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="study")
class RecipeLoss(keras.losses.Loss):
    """The recipe's loss as a Keras Loss (mean over the batch), for models compiled with a non-default one;
    registered, so a saved `.keras` model loads where this module is imported."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "recipe_crossentropy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return crossentropy(y_true, y_pred, self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def improved(current: float, best: float | None, min_delta: float) -> bool:
    """Keras' MonitorCallback._is_improvement in `min` mode: (current - min_delta) < best, None always improves."""
    return best is None or bool(np.less(current - min_delta, best))


def _float32(value: float) -> float:
    """The rate as the optimizer's float32 variable holds it (what Keras logs and trains with)."""
    return float(np.float32(value))


@dataclass
class EpochPolicy:
    """One trial's learning rate, plateau and early-stopping state, the kept epoch, and why it stopped.

    Executors call, per epoch: `rate_for_epoch(epoch)` before it; after it, when the training loss is
    finite, `keeps(loss, val_loss)` (True: keep this epoch's weights) then `end_epoch(epoch, val_loss)`;
    `stopped` then says early stopping ended the trial. `diverged` and `stopped_by_hook` are the executor's
    records of the other two ways a trial ends.
    """

    config: TrialConfig
    learning_rate: float = field(init=False)
    plateau_best: float | None = None
    plateau_wait: int = 0
    stop_best: float | None = None
    stop_wait: int = 0
    best_val_loss: float = math.inf
    stopped: bool = False
    diverged: bool = False
    stopped_by_hook: bool = False

    def __post_init__(self) -> None:
        self.learning_rate = _float32(self.config.learning_rate)

    @property
    def active(self) -> bool:
        return not (self.stopped or self.diverged or self.stopped_by_hook)

    def rate_for_epoch(self, epoch: int) -> float:
        """LearningRateScheduler at epoch begin (epoch schedules); plateau and constant keep the current rate."""
        schedule = EPOCH_SCHEDULES.get(self.config.schedule)
        if schedule is not None:
            c = self.config
            self.learning_rate = _float32(schedule(epoch, c.learning_rate, c.warmup_epochs, c.epochs))
        return self.learning_rate

    def keeps(self, loss: float, val_loss: float) -> bool:
        """This epoch is the new kept one (finite losses, lowest val_loss so far)."""
        if math.isfinite(loss) and math.isfinite(val_loss) and val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            return True
        return False

    def end_epoch(self, epoch: int, val_loss: float) -> None:
        """ReduceLROnPlateau (plateau schedule) and EarlyStopping on val_loss, as their on_epoch_end do."""
        c = self.config
        if c.schedule == "plateau":
            if improved(val_loss, self.plateau_best, PLATEAU_MIN_DELTA):
                self.plateau_best, self.plateau_wait = val_loss, 0
            else:
                self.plateau_wait += 1
                if self.plateau_wait >= c.plateau_patience and self.learning_rate > 0.0:
                    self.learning_rate = _float32(self.learning_rate * c.plateau_factor)
                    self.plateau_wait = 0
        if c.early_stopping_patience > 0:
            self.stop_wait += 1
            if improved(val_loss, self.stop_best, EARLY_STOPPING_MIN_DELTA):
                self.stop_best, self.stop_wait = val_loss, 0
            elif self.stop_wait >= c.early_stopping_patience and epoch > 0:
                self.stopped = True
