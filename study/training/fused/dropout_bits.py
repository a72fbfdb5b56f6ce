"""Dropout masks for the fused step from XLA's RngBitGenerator (JAX's `rbg`), not JAX's threefry.

Keras' JAX dropout draws its mask with `jax.random.bernoulli` on threefry keys: on a CPU
those bits were half of a fused lesson-grid step's op time (benchmarks/fused_profile.py).
The fused executor's equivalence with the Keras executor is statistical, not bitwise, so
its masks may come from another generator as long as each trial's stay a function of its
own seed. This one feeds each dropout call's Keras seed (the layer's SeedGenerator state,
drawn from the trial's seed, advanced per call) to `lax.rng_bit_generator` with the
THREE_FRY algorithm: the same cipher, XLA's own kernel, 2.5x faster here (PHILOX was slower).
JAX's vmap rule for rng_bit_generator gives every lane the first lane's key, which would
make a trial's mask depend on its neighbours, so the vmap rule here draws lane by lane.
STUDY_FUSED_DROPOUT=keras-threefry draws them as Keras does (the results before this module);
`dropout_generator()` names the one in use, and the fused executor records it per trial.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from jax import custom_batching
from keras.src.backend.jax import random as keras_jax_random

GENERATORS = ("rbg-threefry", "keras-threefry")


def dropout_generator() -> str:
    """The fused step's dropout generator: STUDY_FUSED_DROPOUT, rbg-threefry unless set."""
    name = os.environ.get("STUDY_FUSED_DROPOUT", GENERATORS[0])
    if name not in GENERATORS:
        raise ValueError(f"STUDY_FUSED_DROPOUT={name!r}: allowed {', '.join(GENERATORS)}")
    return name


def _bits_one(seed: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    key = jnp.concatenate([seed.astype(jnp.uint32), jnp.zeros(2, jnp.uint32)])
    _, bits = jax.lax.rng_bit_generator(key, shape, dtype=jnp.uint32, algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY)
    return bits


def _bits(seed: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    @custom_batching.custom_vmap
    def draw(seed):
        return _bits_one(seed, shape)

    @draw.def_vmap
    def _lanes(axis_size, in_batched, seed):  # one draw per lane: a lane's bits follow from its own seed only
        if not in_batched[0]:
            return jnp.broadcast_to(draw(seed), (axis_size, *shape)), True
        return jnp.stack([draw(seed[i]) for i in range(axis_size)]), True

    return draw(seed)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Keras' JAX `dropout` with the mask's uniform numbers from `_bits`."""
    if rate == 1.0:
        return jnp.zeros_like(inputs)
    if rate == 0.0:
        return inputs
    seed = keras_jax_random.jax_draw_seed(seed)
    keep = 1.0 - rate
    shape = tuple(keras_jax_random._get_concrete_noise_shape(inputs, noise_shape))
    uniform = jax.lax.bitcast_convert_type((_bits(seed, shape) >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0
    mask = jnp.broadcast_to(uniform < keep, inputs.shape)
    return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))


@contextlib.contextmanager
def fast_dropout() -> Iterator[None]:
    """While tracing the fused step: Keras' JAX dropout draws its masks here (unless keras-threefry)."""
    if dropout_generator() != GENERATORS[0]:
        yield
        return
    original = keras_jax_random.dropout
    keras_jax_random.dropout = dropout
    try:
        yield
    finally:
        keras_jax_random.dropout = original
