"""Each fused trial's own initial state: exactly the weights a fresh Keras build draws from its seed.

Building a fresh Keras model per trial (as the Keras executor does) costs ~0.27 s here.
Keras draws every random initial value from an integer seed that Python's `random`
gives each initializer and seed generator when it is constructed
(`keras.utils.set_random_seed` seeds Python's `random`). So one template model is built
per (structure, init) after seeding with 0, each of its random objects is placed in that
seed's sequence of draws, and a trial with seed s gets the s-sequence's draws at the
same places: each initializer is called again with its replayed seed. The result equals a
fresh build bit for bit, which is checked once per template against a real rebuild; a
model where it does not (another source of randomness) is rebuilt per trial instead.
Trials of one seed therefore start where the Keras executor's start.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import keras
import numpy as np

from study.config import TrialConfig

SEED_STATE = "seed_generator_state"
TEMPLATE_SEED = 0
SEARCH = 100_000  # how far into the template seed's sequence a draw is looked for


class NotFusable(ValueError):
    """A model the fused executor cannot train; the message says why."""


@functools.lru_cache(maxsize=1)
def template_positions() -> dict[int, int]:
    """Each value of the template seed's sequence of draws -> its first place in it."""
    return {value: index for index, value in reversed(list(enumerate(draws(TEMPLATE_SEED, SEARCH))))}


def draws(seed: int, count: int) -> list[int]:
    """The first `count` seeds Keras' make_default_seed returns after random.seed(seed)."""
    generator = random.Random(seed)
    return [generator.randint(1, int(1e9)) for _ in range(count)]


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


class SeedReplay:
    """Where each random draw of a template (built after random.seed(TEMPLATE_SEED)) sits in the sequence."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.table = owners(model)
        self.position = template_positions()
        # Read once, now: the template's variables are overwritten later (kept models are saved through it).
        self.seeds = [self._template_seed(v) for v in model.variables]
        self.usable = all(seed is not False and (seed is None or seed in self.position) for seed in self.seeds)
        self.count = max([self.position[s] + 1 for s in self.seeds if s not in (None, False) and s in self.position],
                         default=0)

    def _template_seed(self, variable: Any) -> int | None | bool:
        """The drawn seed behind a variable's value; None for a constant; False if it cannot be told."""
        if variable.name == SEED_STATE:
            return int(np.asarray(keras.ops.convert_to_numpy(variable.value))[0])
        owner = self.table.get(id(variable))
        if owner is None:
            return False
        initializer = keras.initializers.get(getattr(owner[0], f"{owner[1]}_initializer"))
        if getattr(initializer, "_init_seed", "constant") is None and isinstance(getattr(initializer, "seed", None),
                                                                                 int):
            return initializer.seed
        return None

    def values(self, seed: int) -> list[np.ndarray]:
        """Every variable's initial value (in `model.variables` order) for a trial with this seed."""
        replayed = draws(seed, self.count)
        out = []
        for variable, template_seed in zip(self.model.variables, self.seeds):
            if variable.name == SEED_STATE:
                state = np.zeros(tuple(variable.shape), dtype=variable.dtype)
                state[0] = replayed[self.position[template_seed]]
                out.append(state)
                continue
            layer, name = self.table[id(variable)]
            initializer = keras.initializers.get(getattr(layer, f"{name}_initializer"))
            if template_seed is not None:
                initializer = type(initializer).from_config({**initializer.get_config(),
                                                             "seed": replayed[self.position[template_seed]]})
            out.append(np.asarray(keras.ops.convert_to_numpy(initializer(tuple(variable.shape),
                                                                         dtype=variable.dtype))))
        return out


def build_template(build: Any, config: TrialConfig) -> Any:
    """A model built the way seed TEMPLATE_SEED's fresh build is (its draws are then in known places)."""
    keras.utils.set_random_seed(TEMPLATE_SEED)
    return build(config)


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


def fusion_problem(model: Any) -> str | None:
    """Why the fused executor cannot train `model` the way Keras' fit would (None if it can): it trains with
    stateless_call and the framework's loss, so a model's own train_step or compute_loss would be skipped."""
    for method in ("train_step", "compute_loss", "test_step"):
        if getattr(type(model), method, None) is not getattr(keras.Model, method, None):
            return f"its class {type(model).__name__} overrides {method}, which the fused program does not call"
    return None
