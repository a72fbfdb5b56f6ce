"""The Keras executor: one trial at a time through Keras' own `fit` (the reference executor).

Imports Keras: import this module only after the backend is chosen (study.training.backend).
A loss that turns NaN/inf stops the trial with status `diverged`: it is a result,
recorded with its last finite metrics, not a crash.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from study.config import LESSON_MODEL, TrialConfig
from study.core.status import TrialStatus
from study.data.arrays import Splits
from study.data.registry import dataset_info
from study.training.callbacks import BestWeights, DivergenceMonitor, HooksCallback, LearningRateRecorder, StopOnRequest
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
from study.training.keras_internals import CompiledModels, fast_path_allowed, fuse_train_steps
from study.training.models import build_model, model_inputs
from study.training.optimizers import build_optimizer
from study.training.probes import ProbeCallback, probe_batch
from study.training.results import EPOCH_METRICS, TrialResult, is_epoch_metric, nonfinite, summarize_history
from study.training.schedules import schedule_callbacks

_COMPILED = CompiledModels()


class KerasExecutor:
    """Trains each trial of a batch in turn with `model.fit`, bit for bit what the lesson's Keras code computes
    (on the same backend), with the measured speed-ups of study.training.keras_internals where verified."""

    name = "keras"
    bit_identical_to_keras = True

    def run(self, batch: Batch, settings: ExecutionSettings) -> list[TrialResult]:
        results = []
        for index, (config, splits, hooks) in enumerate(zip(batch.configs, batch.splits, batch.hooks)):
            workdir = batch.workdir / f"trial-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(train_trial(config, splits, settings, hooks=hooks, workdir=workdir,
                                       extra_callbacks=[StopOnRequest(batch.stop)]))
        return results


def compile_model(model: Any, config: TrialConfig, settings: ExecutionSettings) -> None:
    model.compile(
        optimizer=build_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        steps_per_execution=settings.steps_per_execution,
    )
    # Fused steps were verified bit-identical for the lesson's MLP only: a user's conv net (tests/executors/
    # user_cnn.py) inside lax.scan compiles to other float roundings (val_loss 1.95481 vs 1.95485), so user
    # models keep Keras' own step loop (reused compiled models stay: bit-identical for them too).
    if settings.fuse_steps and settings.steps_per_execution > 1 and config.model == LESSON_MODEL \
            and fast_path_allowed():
        fuse_train_steps(model, settings.steps_per_execution)


def prepared_model(config: TrialConfig, settings: ExecutionSettings, train_samples: int) -> Any:
    """The trial's freshly built, seeded and compiled model, or a compiled twin holding its initial state."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    fresh = build_model(config, dataset_info(config.dataset))
    compile_model(fresh, config, settings)  # cheap (nothing is traced yet), and draws what a fresh trial draws
    if settings.reuse_compiled and fast_path_allowed():
        return _COMPILED.model_for(config, fresh, settings.steps_per_execution, train_samples)
    return fresh


def train_trial(
    config: TrialConfig,
    splits: Splits,
    settings: ExecutionSettings = ExecutionSettings(),
    hooks: TrialHooks | None = None,
    workdir: Path | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> TrialResult:
    """Train and evaluate one trial. KeyboardInterrupt propagates to the caller."""
    started = time.perf_counter()
    model = prepared_model(config, settings, len(splits.x_train))
    best_weights = BestWeights()
    divergence = DivergenceMonitor()
    hooked = HooksCallback(hooks or TrialHooks(), config.epochs)
    callbacks = [*schedule_callbacks(config), LearningRateRecorder(), divergence, best_weights]
    if settings.probes:
        callbacks.append(ProbeCallback(*probe_batch(model_inputs(model, splits.x_train), splits.y_train)))
    if config.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience))
    callbacks += [hooked, *extra_callbacks]

    fit = model.fit(
        model_inputs(model, splits.x_train),
        splits.y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(model_inputs(model, splits.x_val), splits.y_val),
        validation_batch_size=settings.eval_batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    history = {name: [float(v) for v in fit.history.get(name, [])] for name in EPOCH_METRICS}
    history.update({name: [float(v) for v in values] for name, values in fit.history.items()
                    if is_epoch_metric(name) and name not in history})
    status = TrialStatus.DIVERGED if divergence.diverged or nonfinite(history) else TrialStatus.COMPLETED
    final = summarize_history(history)

    model_path = None
    # Only a finite best epoch (summarize_history) yields a model worth testing.
    if best_weights.weights is not None and "best_epoch" in final:
        model.set_weights(best_weights.weights)
        test_loss, test_acc = model.evaluate(model_inputs(model, splits.x_test), splits.y_test,
                                             batch_size=settings.eval_batch_size, verbose=0)
        final["test_loss"], final["test_accuracy"] = float(test_loss), float(test_acc)
        if settings.save_model and workdir is not None:
            model_path = Path(workdir) / "best_model.keras"
            model.save(str(model_path))
    final["params"] = float(model.count_params())
    return TrialResult(config=config, status=status.value, history=history, final=final,
                       wall_time_s=time.perf_counter() - started, model_path=model_path,
                       stopped_by_hook=hooked.stopped)
