"""The Keras-internals speed path, behind one seam and a version gate.

Two things here go beneath Keras' public API, each measured and each checked by a
test that compares histories bit for bit with plain Keras:
- `CompiledModels` keeps compiled JAX models per structure and reuses them;
- `fuse_train_steps` runs `steps_per_execution` JAX training steps as one XLA
  program (`lax.scan`), replacing the model's `make_train_function`.
Both rely on details of Keras' JAX trainer (its train-step state layout, the
permutation `_symbolic_build` draws, `keras.src.tree`). Keras upstream merged a
`lax.scan` for `steps_per_execution` (keras-team/keras#23527), so a new Keras may
change exactly what this replaces: the path is used only on the versions it was
verified on (VERIFIED_KERAS); elsewhere a warning says why and plain Keras runs.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from study.config import TrialConfig, structure_key

# Keras versions the fast path was verified on (bit-identical histories, tests/test_keras_executor.py).
VERIFIED_KERAS = ((3, 15),)  # major.minor; pyproject.toml pins keras to this range
_warned: set[str] = set()


def keras_version() -> str:
    return keras.__version__


def fast_path_allowed() -> bool:
    """True on a verified Keras on the JAX backend; else False, with one warning saying why."""
    if keras.backend.backend() != "jax":
        return False
    version = keras_version()
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts in VERIFIED_KERAS:
        return True
    if version not in _warned:
        _warned.add(version)
        verified = ", ".join(".".join(map(str, v)) + ".x" for v in VERIFIED_KERAS)
        warnings.warn(f"Keras {version} is outside the versions the JAX fast path (fused steps, reused compiled "
                      f"models) was verified on ({verified}): training uses plain Keras, which computes the same "
                      "results more slowly", RuntimeWarning, stacklevel=2)
    return False


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
    replayed. The TensorFlow backend shuffles with TF ops whose draws cannot be
    replayed this way: it keeps fresh models.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._models: dict[tuple, Any] = {}

    def __len__(self) -> int:
        return len(self._models)

    def model_for(self, config: TrialConfig, fresh: Any, steps_per_execution: int, train_samples: int) -> Any:
        """`fresh` (built and compiled for this trial) or a compiled twin loaded with its initial state."""
        key = (steps_per_execution, config.dataset, structure_key(config))  # the data fixes input and output shapes
        model = self._models.pop(key, None)
        if model is None:
            model = fresh
        else:
            load_initial_state(model, fresh, config)
            np.random.permutation(train_samples)  # the batch a fresh model's _symbolic_build draws
        self._models[key] = model  # most recently used last
        while len(self._models) > self.capacity:
            self._models.pop(next(iter(self._models)))
        return model


def load_initial_state(model: Any, fresh: Any, config: TrialConfig) -> None:
    """Give `model` exactly the state a fresh, just-compiled copy of `fresh` would start with."""
    if len(model.variables) != len(fresh.variables):
        raise RuntimeError("a cached model does not match its fresh twin (different variables)")
    for target, source in zip(model.variables, fresh.variables):
        target.assign(source.value)
    optimizer = model.optimizer
    for variable in optimizer.variables:
        variable.assign(keras.ops.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate = config.learning_rate


def fuse_train_steps(model: Any, steps: int) -> None:
    """Make the JAX model run `steps` training steps per call as one XLA program.

    Keras' JAX trainer runs `steps_per_execution` as a Python loop of single jitted
    steps: per step, Python slices the batch, flattens the state and dispatches.
    Here the same batches (taken from Keras' own iterator, so shuffling is unchanged)
    are stacked and `model.train_step` is scanned over them (`jax.lax.scan`); a short
    last chunk, or one holding the epoch's short last batch, runs step by step as in
    Keras. Same steps, same order, same state threading: a test checks bit-identical
    histories. It saves the Python work, which on a 2-core machine competes with a
    second worker for the cores.
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
