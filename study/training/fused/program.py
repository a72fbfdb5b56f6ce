"""One structure's training and evaluation as XLA programs over a leading trial axis (JAX).

The model and optimizer stay Keras objects: `model.stateless_call` and
`optimizer.stateless_apply` are vmapped over the trials' stacked variables inside a
jitted `lax.scan` over a chunk of steps. The learning rate is an optimizer variable,
so stacking gives each trial its own. Trials of a group share their batches (same
seed, same order), so each step gathers one batch for all of them. That batch is
broadcast to every lane, so each lane's matrix products are same-shaped slices of one
batched product and a lane's arithmetic does not depend on its place: the first layer
as one product over the group ([batch, in] @ [in, lanes x units]) rounded the lanes in
its last column panel differently (issue 22; study.training.fused.lanes fixes the other
half, the width). A trial whose loss turns non-finite
keeps its last finite state from then on (`alive`); inactive trials (stopped early,
pruned, diverged) are frozen the same way, so the rest of the group goes on untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import keras

TrainState = tuple[list, list, list]  # trainable, non-trainable, optimizer variables; each leaf [K, ...]


def _per_lane(x: jax.Array, lanes: int) -> jax.Array:
    return jnp.broadcast_to(x, (lanes, *x.shape))


def _where(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


@dataclass
class FusedProgram:
    """The compiled train-chunk and evaluate functions of one model structure."""

    model: Any
    optimizer: Any
    unroll: int = 1  # scan steps per loop iteration: a GPU pays a host round trip per iteration

    def __post_init__(self) -> None:
        self.train_chunk = jax.jit(self._train_chunk, donate_argnums=(0,), static_argnames=("shared",))
        self.evaluate = jax.jit(self._evaluate)

    # ------------------------------------------------------------------ one trial, one batch

    def _trial_step(self, trainable: list, non_trainable: list, opt: list, x: jax.Array, y: jax.Array):
        def loss_fn(trainable_values, non_trainable_values):
            y_pred, non_trainable_values, losses = self.model.stateless_call(
                trainable_values, non_trainable_values, x, training=True, return_losses=True)
            loss = keras.ops.mean(keras.ops.sparse_categorical_crossentropy(y, y_pred))
            if losses:
                loss = loss + sum(losses)
            return loss, (y_pred, non_trainable_values)

        (loss, (y_pred, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, non_trainable)
        trainable, opt = self.optimizer.stateless_apply(opt, grads, trainable)
        correct = jnp.sum(jnp.argmax(y_pred, axis=-1) == y)
        return trainable, non_trainable, opt, loss, correct

    # ------------------------------------------------------------------ the group, a chunk of steps

    def _train_chunk(self, carry, x_all: jax.Array, y_all: jax.Array, indices: jax.Array, shared: bool = True):
        """Steps over `indices`: [steps, batch] shared by every trial, or [steps, trials, batch] each its own.
        carry: (state, alive, sums)."""
        step = jax.vmap(self._trial_step, in_axes=(0, 0, 0, 0, None) if shared else 0)

        def body(carry, batch_indices):
            (trainable, non_trainable, opt), alive, (loss_sum, correct_sum, count, diverged) = carry
            x, y = x_all[batch_indices], y_all[batch_indices]
            if shared:  # every lane its own copy of the batch (see the module docstring)
                x = _per_lane(x, alive.shape[0])
            new_trainable, new_non_trainable, new_opt, loss, correct = step(trainable, non_trainable, opt, x, y)
            finite = jnp.isfinite(loss)
            ok = alive & finite
            new_state, old_state = (new_trainable, new_non_trainable, new_opt), (trainable, non_trainable, opt)
            # Masking every variable costs as much as the optimizer's update: only when a trial must stay frozen.
            state = jax.tree.map(lambda n, o: _where(ok, n, o), new_state, old_state)
            size = batch_indices.shape[-1]
            sums = (loss_sum + jnp.where(ok, loss * size, 0.0), correct_sum + jnp.where(ok, correct, 0),
                    count + jnp.where(ok, size, 0), diverged | (alive & ~finite))
            return (state, ok, sums), None

        carry, _ = jax.lax.scan(body, carry, indices, unroll=min(self.unroll, max(1, indices.shape[0])))
        return carry

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, trainable: list, non_trainable: list, x: jax.Array, y: jax.Array, valid: jax.Array):
        """Per trial: summed loss and correct predictions over the rows of x marked valid (padding excluded).
        x is broadcast to every lane, as in training."""
        def one(trainable_values, non_trainable_values, x):
            y_pred, _ = self.model.stateless_call(trainable_values, non_trainable_values, x, training=False)
            losses = keras.ops.sparse_categorical_crossentropy(y, y_pred)
            return (jnp.sum(jnp.where(valid, losses, 0.0)),
                    jnp.sum(jnp.where(valid, jnp.argmax(y_pred, axis=-1) == y, False)))

        return jax.vmap(one)(trainable, non_trainable, _per_lane(x, jax.tree.leaves(trainable)[0].shape[0]))
