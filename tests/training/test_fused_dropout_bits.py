"""The fused step's dropout masks (study.training.fused.dropout_bits): a function of the lane's own seed,
Keras' keep rate, and the generator recorded with every trial."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from study.tracking.environment import versions
from study.training.fused.dropout_bits import dropout, dropout_generator


def test_a_lanes_mask_follows_from_its_own_seed_only():
    x = jnp.ones((6, 32, 16))
    seeds = jnp.arange(12, dtype=jnp.uint32).reshape(6, 2) * 7 + 1
    together = jax.jit(jax.vmap(lambda x, s: dropout(x, 0.3, seed=s)))(x, seeds)
    others = seeds.at[0].set(jnp.array([99, 5], jnp.uint32))  # other neighbours, lane 3 the same
    again = jax.jit(jax.vmap(lambda x, s: dropout(x, 0.3, seed=s)))(x, others)
    alone = dropout(x[3], 0.3, seed=seeds[3])
    assert np.array_equal(together[3], alone) and np.array_equal(again[3], alone)
    assert not np.array_equal(together[1], together[2])  # lanes differ (JAX's vmap rule would not)
    kept = float(jnp.mean(together != 0))
    assert kept == pytest.approx(0.7, abs=0.03)
    assert np.allclose(together[together != 0], 1 / 0.7)


def test_the_generator_is_recorded_and_checked(monkeypatch):
    monkeypatch.delenv("STUDY_FUSED_DROPOUT", raising=False)
    assert versions()["fused_dropout"] == dropout_generator() == "rbg-threefry"
    monkeypatch.setenv("STUDY_FUSED_DROPOUT", "keras-threefry")
    assert versions()["fused_dropout"] == dropout_generator() == "keras-threefry"
    monkeypatch.setenv("STUDY_FUSED_DROPOUT", "mt19937")
    with pytest.raises(ValueError, match="STUDY_FUSED_DROPOUT"):
        dropout_generator()
