"""Train one TrialConfig on in-memory MNIST and return a TrialResult.

Imports Keras: import this module only after the backend is chosen (study.backend).
A loss that turns NaN/inf stops the trial with status `diverged`: it is a result,
recorded with its last finite metrics, not a crash.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from study.callbacks import DivergenceMonitor, LearningRateRecorder
from study.config import TrialConfig
from study.data import Splits
from study.model import build_model, build_optimizer
from study.schedules import schedule_callbacks

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


@dataclass(frozen=True)
class ExecutionSettings:
    """How a trial is executed; none of these change what it computes."""

    steps_per_execution: int = 128
    eval_batch_size: int = 2048
    verbose: int = 0
    save_model: bool = True


@dataclass
class TrialResult:
    config: TrialConfig
    status: str  # completed | diverged | failed | interrupted
    history: dict[str, list[float]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    model_path: Path | None = None
    error: str = ""

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))


def train_trial(
    config: TrialConfig,
    splits: Splits,
    settings: ExecutionSettings = ExecutionSettings(),
    extra_callbacks: Sequence[Any] = (),
    workdir: Path | None = None,
) -> TrialResult:
    """Train and evaluate one trial. KeyboardInterrupt propagates to the caller."""
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)

    model = build_model(config)
    model.compile(
        optimizer=build_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        steps_per_execution=settings.steps_per_execution,
    )
    workdir = Path(workdir or tempfile.mkdtemp(prefix="trial-"))
    best_weights = workdir / "best.weights.h5"
    divergence = DivergenceMonitor()
    callbacks = [
        *schedule_callbacks(config),
        LearningRateRecorder(),
        divergence,
        keras.callbacks.ModelCheckpoint(
            str(best_weights), monitor="val_loss", mode="min", save_best_only=True, save_weights_only=True),
    ]
    if config.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience))
    callbacks.extend(extra_callbacks)

    fit = model.fit(
        splits.x_train,
        splits.y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(splits.x_val, splits.y_val),
        validation_batch_size=settings.eval_batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    history = {name: [float(v) for v in fit.history.get(name, [])] for name in EPOCH_METRICS}
    status = "diverged" if divergence.diverged or _nonfinite(history) else "completed"
    final = summarize_history(history)

    model_path = None
    # Keras' ModelCheckpoint always saves the first epoch, even a NaN one: only a finite
    # best epoch (summarize_history) yields a model worth testing.
    if best_weights.is_file() and "best_epoch" in final:
        model.load_weights(str(best_weights))
        test_loss, test_acc = model.evaluate(
            splits.x_test, splits.y_test, batch_size=settings.eval_batch_size, verbose=0)
        final["test_loss"], final["test_accuracy"] = float(test_loss), float(test_acc)
        if settings.save_model:
            model_path = workdir / "best_model.keras"
            model.save(str(model_path))
    final["params"] = float(model.count_params())
    return TrialResult(
        config=config,
        status=status,
        history=history,
        final=final,
        wall_time_s=time.perf_counter() - started,
        model_path=model_path,
    )


def _nonfinite(history: dict[str, list[float]]) -> bool:
    return any(not math.isfinite(v) for v in history.get("loss", []))


def summarize_history(history: dict[str, list[float]]) -> dict[str, float]:
    """Final metrics from per-epoch history, using only finite epochs.

    `final_*` describe the kept model (the epoch with the lowest val_loss, whose
    weights ModelCheckpoint saved); `last_*` the last finite epoch.
    """
    losses = history.get("loss", [])
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)
              and math.isfinite(history.get("val_loss", [math.inf] * len(losses))[i])]
    out: dict[str, float] = {"epochs_run": float(len(losses))}
    if not finite:
        return out
    last = finite[-1]
    val_losses = np.array([history["val_loss"][i] for i in finite])
    best = finite[int(np.argmin(val_losses))]
    out["best_epoch"] = float(best)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        values = history.get(name, [])
        if values:
            out[f"last_{name}"] = values[last]
            out[f"final_{name}"] = values[best]
    out["best_val_accuracy"] = max(history["val_accuracy"][i] for i in finite)
    return out
