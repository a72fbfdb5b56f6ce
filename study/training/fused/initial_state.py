"""Each fused trial's own initial state: weights drawn from its seed and its init, fresh optimizer state.

Building a fresh Keras model per trial (as the Keras executor does) costs ~0.27 s here;
instead one template model is built per (structure, init) and every variable is drawn
again with the initializer its layer declares (`<name>_initializer`, Keras' convention),
seeded from (trial seed, variable position): a trial's initial weights depend on its
seed and init alone, not on the group it was trained in. Dropout seed generators get
the trial's own seed. A variable without a declared initializer cannot be drawn this
way: such a model is rebuilt per trial instead (slower, same guarantee).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from study.config import TrialConfig

SEED_STATE = "seed_generator_state"


class NotFusable(ValueError):
    """A model the fused executor cannot train; the message says why."""


def derived_seed(seed: int, position: int) -> int:
    """A per-variable seed from the trial's seed: stable across processes, groups and machines."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


def owners(model: Any) -> dict[int, tuple[Any, str]]:
    """id(variable) -> (layer, name) for each variable whose layer declares `<name>_initializer`."""
    found: dict[int, tuple[Any, str]] = {}
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        for variable in layer.weights:
            if hasattr(layer, f"{variable.name}_initializer"):
                found.setdefault(id(variable), (layer, variable.name))
    return found


def drawn_values(model: Any, seed: int) -> list[np.ndarray] | None:
    """Fresh values for every variable of `model` (in `model.variables` order), or None if one of them
    has no initializer the executor can call again."""
    table = owners(model)
    values = []
    for position, variable in enumerate(model.variables):
        if variable.name == SEED_STATE:
            state = np.zeros(tuple(variable.shape), dtype=variable.dtype)
            state[0] = derived_seed(seed, position) % (2 ** 31)
            values.append(state)
            continue
        owner = table.get(id(variable))
        if owner is None:
            return None
        layer, name = owner
        initializer = keras.initializers.get(getattr(layer, f"{name}_initializer"))
        config = initializer.get_config()
        if "seed" in config:
            initializer = type(initializer).from_config({**config, "seed": derived_seed(seed, position)})
        values.append(np.asarray(keras.ops.convert_to_numpy(initializer(tuple(variable.shape),
                                                                        dtype=variable.dtype))))
    return values


def rebuilt_values(build: Any, config: TrialConfig) -> list[np.ndarray]:
    """The slow path: a fresh model built after seeding, as the Keras executor builds it."""
    keras.utils.set_random_seed(config.seed)
    model = build(config)
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.variables]


def optimizer_values(optimizer: Any, learning_rate: float) -> list[np.ndarray]:
    """A just-built optimizer's state (zero slots, step 0) with this trial's learning rate."""
    values = []
    for variable in optimizer.variables:
        if variable is getattr(optimizer, "_learning_rate", None) or variable.name == "learning_rate":
            values.append(np.asarray(learning_rate, dtype=variable.dtype))
        else:
            values.append(np.zeros(tuple(variable.shape), dtype=variable.dtype))
    return values


def learning_rate_index(optimizer: Any) -> int:
    """Where the learning rate sits among the optimizer's variables (fused trials each have their own)."""
    for index, variable in enumerate(optimizer.variables):
        if variable is getattr(optimizer, "_learning_rate", None) or variable.name == "learning_rate":
            return index
    raise NotFusable(f"{type(optimizer).__name__} keeps its learning rate outside its variables, so trials of one "
                     "group cannot each have their own; use executor: keras")
