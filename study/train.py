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

from study.callbacks import BestWeights, DivergenceMonitor, LearningRateRecorder
from study.config import TrialConfig, structure_key
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
    reuse_compiled: bool = True  # see CompiledModels
    fuse_steps: bool = True  # JAX: steps_per_execution steps as one XLA program (see fuse_train_steps)
    # A learning-curve PNG per MLflow run: ~0.3 s per trial (12% of a JAX trial here), and the
    # MLflow UI charts every logged per-epoch metric anyway; `--trial-figures` turns it on.
    trial_figures: bool = False


class CompiledModels:
    """Compiled models kept per graph structure and reused by later trials of that structure (JAX).

    Why: every new Keras model traces its train and test functions again: about
    0.5-1 s per trial on JAX for the same program. What a trial computes does not
    change: it still builds and compiles its own fresh model right after
    `clear_session` and seeding (so every random draw happens as in a fresh process),
    and that model's variables (weights, batch-norm statistics, dropout seed states)
    are copied into the compiled one, whose optimizer is reset to its initial state
    (zero slots and step count, the trial's learning rate). The one draw a fresh
    model's first `fit` makes and a reused one skips (`_symbolic_build` takes a batch,
    which on JAX costs one shuffle permutation from NumPy's global generator) is
    replayed. A test checks that reused models give bit-identical histories to fresh
    ones, so a Keras upgrade that changes this fails loudly. The TensorFlow backend
    shuffles with TF ops whose draws cannot be replayed this way: it keeps fresh models.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._models: dict[tuple, Any] = {}

    def __len__(self) -> int:
        return len(self._models)

    def model_for(self, config: TrialConfig, settings: "ExecutionSettings", train_samples: int):
        fresh = build_model(config)
        compile_model(fresh, config, settings)  # cheap (nothing is traced yet), and draws what a fresh trial draws
        key = (settings.steps_per_execution, structure_key(config))
        model = self._models.pop(key, None)
        if model is None:
            model = fresh
        else:
            _load_initial_state(model, fresh, config)
            np.random.permutation(train_samples)  # the batch a fresh model's _symbolic_build draws
        self._models[key] = model  # most recently used last
        while len(self._models) > self.capacity:
            self._models.pop(next(iter(self._models)))
        return model


def compile_model(model, config: TrialConfig, settings: "ExecutionSettings") -> None:
    model.compile(
        optimizer=build_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
        steps_per_execution=settings.steps_per_execution,
    )
    if settings.fuse_steps and settings.steps_per_execution > 1 and keras.backend.backend() == "jax":
        fuse_train_steps(model, settings.steps_per_execution)


def fuse_train_steps(model, steps: int) -> None:
    """Make the JAX model run `steps` training steps per call as one XLA program.

    Keras' JAX trainer runs `steps_per_execution` as a Python loop of single jitted
    steps: per step, Python slices the batch, flattens the state and dispatches.
    Here the same batches (taken from Keras' own iterator, so shuffling is unchanged)
    are stacked and `model.train_step` is scanned over them (`jax.lax.scan`); a short
    last chunk, or one holding the epoch's short last batch, runs step by step as in Keras. Same steps, same order, same state
    threading: a test checks bit-identical histories. It saves the Python work, which
    on a 2-core machine competes with a second worker for the cores.
    """
    import jax
    from keras.src import tree

    def make_train_function(force: bool = False) -> None:
        if model.train_function is not None and not force:
            return
        single = jax.jit(model.train_step, donate_argnums=0)

        def scan_steps(state, batches):
            def body(carry, data):
                logs, carry = model.train_step(carry, data)
                return carry, logs

            state, logs = jax.lax.scan(body, state, batches)
            return tree.map_structure(lambda x: x[-1], logs), state

        fused = jax.jit(scan_steps, donate_argnums=0)

        def iterator_step(state, iterator):
            batches = [next(iterator)]  # StopIteration here ends the epoch, as in Keras
            try:
                while len(batches) < steps:
                    batches.append(next(iterator))
            except StopIteration:
                pass
            shapes = {tuple(np.shape(x) for x in tree.flatten(data)) for data in batches}
            if len(batches) == steps and len(shapes) == 1:  # a short last batch cannot be stacked
                return fused(state, tree.map_structure(lambda *xs: np.stack(xs), *batches))
            for data in batches:
                logs, state = single(state, data)
            return logs, state

        model.train_function = iterator_step

    model.make_train_function = make_train_function


def _load_initial_state(model, fresh, config: TrialConfig) -> None:
    """Give `model` exactly the state a fresh, just-compiled copy of `fresh` would start with."""
    if len(model.variables) != len(fresh.variables):
        raise RuntimeError("a cached model does not match its fresh twin (different variables)")
    for target, source in zip(model.variables, fresh.variables):
        target.assign(source.value)
    optimizer = model.optimizer
    for variable in optimizer.variables:
        variable.assign(keras.ops.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate = config.learning_rate


_COMPILED = CompiledModels()


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

    if settings.reuse_compiled and keras.backend.backend() == "jax":
        model = _COMPILED.model_for(config, settings, len(splits.x_train))
    else:
        model = build_model(config)
        compile_model(model, config, settings)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="trial-"))
    best_weights = BestWeights()
    divergence = DivergenceMonitor()
    callbacks = [
        *schedule_callbacks(config),
        LearningRateRecorder(),
        divergence,
        best_weights,
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
    # Only a finite best epoch (summarize_history) yields a model worth testing.
    if best_weights.weights is not None and "best_epoch" in final:
        model.set_weights(best_weights.weights)
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
    weights callbacks.BestWeights kept); `last_*` the last finite epoch.
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
