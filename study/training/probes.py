"""Per-epoch probes of the mechanism behind the lesson's claims ("sigmoid's gradients vanish"), measured
rather than inferred from accuracy (issue 19).

At the end of each epoch, with the current weights, on a fixed probe batch (the first PROBE_BATCH images of
the trial's training split: the same for every trial of a split) and in inference mode (training=False: no
dropout draws, batch norm on its moving statistics), so every executor computes the same numbers:
- `grad_norm/<layer>`: the L2 norm of the gradient of the training loss (mean sparse categorical
  crossentropy over the probe batch, plus the model's own losses) with respect to every trainable kernel
  (Dense, Conv, ...), named by its layer (`dense_0` ... and the output layer `softmax` in the lesson's MLP);
- `saturated/<layer>`: for a hidden layer whose activation is sigmoid, tanh or relu, the share of its units
  that pass (almost) no gradient. sigmoid: share of activations (examples x units) below SIGMOID_TAIL or
  above 1 - SIGMOID_TAIL (there sigmoid' < 0.0475, under 19% of its peak 0.25); tanh: share with
  |output| > TANH_TAIL (tanh' < 0.19, 19% of its peak); relu: share of dead units, whose output is exactly
  0 for every example of the probe batch (a unit is one feature of the last axis: a Dense unit, a conv
  channel). An activation is named by the nearest kernel layer before it (the Dense it follows), so
  `grad_norm/dense_0` and `saturated/dense_0` describe one layer whatever its activation.
One implementation, two backends: TensorFlow through tf.GradientTape, JAX through jax.grad over the
model's variables in a StatelessScope (pure, so the fused executor vmaps it over a group's trials).
Imports Keras: load only after the backend is chosen (study.training.backend).
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np
from keras import ops

from study.core.names import GRAD_NORM_PREFIX, SATURATED_PREFIX

PROBE_BATCH = 512
SIGMOID_TAIL = 0.05
TANH_TAIL = 0.9
KERNEL = "kernel"


def _activation_kind(layer: Any) -> str | None:
    """'sigmoid', 'tanh' or 'relu' when the layer ends in that activation (an Activation layer, or a layer
    with `activation=`), else None."""
    function = getattr(layer, "activation", None)
    for kind in ("sigmoid", "tanh", "relu"):
        if function is getattr(keras.activations, kind):
            return kind
    return None


def _kernel_name(variable: Any, model: Any) -> str:
    """The layer a kernel belongs to, by its path in the model ('dense_0/kernel' -> 'dense_0'; a nested layer
    keeps its parents' names, 'block/dense'; a subclassed model's own name is dropped)."""
    path = variable.path.rpartition("/")[0] or variable.name
    return path.removeprefix(f"{model.name}/")


def _saturated(kind: str, values: Any) -> Any:
    if kind == "sigmoid":
        return ops.mean(ops.cast(ops.logical_or(values < SIGMOID_TAIL, values > 1 - SIGMOID_TAIL), "float32"))
    if kind == "tanh":
        return ops.mean(ops.cast(ops.abs(values) > TANH_TAIL, "float32"))
    units = ops.reshape(values, (-1, values.shape[-1]))
    return ops.mean(ops.cast(ops.all(ops.equal(units, 0), axis=0), "float32"))


class Probe:
    """The probes of one model (its structure fixes the names); `values` for its current weights,
    `jax_values` as a pure function of given weights (JAX: jit it, or vmap it over stacked trials)."""

    def __init__(self, model: Any) -> None:
        self._model = weakref.ref(model)  # probe_for's cache is keyed by the model: a strong reference would leak
        trainable = model.trainable_variables
        self.kernel_at = [i for i, v in enumerate(trainable) if v.name == KERNEL]
        self.names = [GRAD_NORM_PREFIX + _kernel_name(trainable[i], model) for i in self.kernel_at]
        self.kinds: list[str] = []
        self.graph = model
        watched = self._activations(model)
        if watched:
            try:  # Keras' way to read intermediate outputs: a model over the same layers, more outputs
                self.graph = keras.Model(model.input, [*model.outputs, *[layer.output for _, _, layer in watched]],
                                         name=f"{model.name}_probe")
            except (AttributeError, ValueError, TypeError):  # a subclassed model has no graph to read
                watched = []
        self.kinds = [kind for _, kind, _ in watched]
        self.names += [SATURATED_PREFIX + name for name, _, _ in watched]
        self._jitted = None
        self._group = None

    @property
    def model(self) -> Any:
        return self._model()

    @staticmethod
    def _activations(model: Any) -> list[tuple[str, str, Any]]:
        """(name, kind, layer) of each probed activation, named by the nearest kernel layer before it."""
        found: list[tuple[str, str, Any]] = []
        current = None
        for layer in getattr(model, "layers", []):
            kernel = getattr(layer, KERNEL, None)
            if kernel is not None and getattr(kernel, "trainable", False):
                current = _kernel_name(kernel, model)
            kind = _activation_kind(layer)
            if kind is not None:
                taken = {name for name, _, _ in found}
                found.append((current if current is not None and current not in taken else layer.name, kind, layer))
        return found

    # ------------------------------------------------------------------ the computation, backend-neutral

    def _forward(self, x: Any, y: Any) -> tuple[Any, list]:
        """Training loss on (x, y) in inference mode, and the watched activations."""
        outputs = self.graph(x, training=False)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        loss = ops.mean(ops.sparse_categorical_crossentropy(y, outputs[0]))
        for extra in self.graph.losses:
            loss = loss + extra
        return loss, outputs[1:]

    def _summaries(self, grads: list, activations: list) -> Any:
        norms = [ops.sqrt(ops.sum(ops.square(g))) for g in grads]
        shares = [_saturated(kind, a) for kind, a in zip(self.kinds, activations)]
        return ops.stack([ops.cast(v, "float32") for v in norms + shares])

    def jax_values(self, trainable: list, non_trainable: list, x: Any, y: Any) -> Any:
        """The probe vector (in `names` order) for these variable values: pure, so jit- and vmap-able."""
        import jax

        def loss_of(kernels: list):
            values = list(trainable)
            for i, kernel in zip(self.kernel_at, kernels):
                values[i] = kernel
            mapping = [*zip(self.model.trainable_variables, values),
                       *zip(self.model.non_trainable_variables, non_trainable)]
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
                return self._forward(x, y)

        grads, activations = jax.grad(loss_of, has_aux=True)([trainable[i] for i in self.kernel_at])
        return self._summaries(grads, activations)

    def _tensorflow_values(self, x: Any, y: Any) -> Any:
        import tensorflow as tf

        kernels = [self.model.trainable_variables[i] for i in self.kernel_at]
        with tf.GradientTape() as tape:
            loss, activations = self._forward(x, y)
        grads = tape.gradient(loss, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)  # as jax.grad
        return self._summaries(grads, activations)

    # ------------------------------------------------------------------ what executors call

    def values(self, x: Any, y: Any) -> dict[str, float]:
        """The probes of the model's current weights (one trial: the Keras executor)."""
        if not self.names:
            return {}
        if keras.backend.backend() == "jax":
            import jax

            if self._jitted is None:
                self._jitted = jax.jit(self.jax_values)
            vector = self._jitted([v.value for v in self.model.trainable_variables],
                                  [v.value for v in self.model.non_trainable_variables], x, y)
        elif keras.backend.backend() == "tensorflow":
            vector = self._tensorflow_values(x, y)
        else:
            return {}
        return dict(zip(self.names, np.asarray(ops.convert_to_numpy(vector), dtype=float).tolist()))

    def group_values(self, trainable: list, non_trainable: list, x: Any, y: Any) -> list[dict[str, float]]:
        """Per trial, the probes of a group's stacked variables (leading trial axis; the fused executor)."""
        import jax

        if not self.names:
            return [{} for _ in range(len(trainable[0]) if trainable else 0)]
        if self._group is None:
            self._group = jax.jit(jax.vmap(self.jax_values, in_axes=(0, 0, None, None)))
        vectors = np.asarray(self._group(trainable, non_trainable, x, y), dtype=float)
        return [dict(zip(self.names, row.tolist())) for row in vectors]


_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def probe_for(model: Any) -> Probe:
    """The model's Probe, built once per model object (a reused compiled model keeps its jitted probe)."""
    probe = _PROBES.get(model)
    if probe is None:
        probe = _PROBES[model] = Probe(model)
    return probe


def probe_batch(x: Any, y: Any) -> tuple[Any, Any]:
    """The fixed probe batch of a training split: its first PROBE_BATCH examples."""
    return x[:PROBE_BATCH], y[:PROBE_BATCH]


class ProbeCallback(keras.callbacks.Callback):
    """Adds the probes of each epoch's final weights to the epoch logs (so HooksCallback and History see them).
    Must come before the callbacks that read them; reads only, draws nothing, so training is unchanged."""

    def __init__(self, x: Any, y: Any) -> None:
        super().__init__()
        self.x, self.y = x, y

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.x, self.y = ops.convert_to_tensor(self.x), ops.convert_to_tensor(self.y)  # on the device once

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(probe_for(self.model).values(self.x, self.y))
