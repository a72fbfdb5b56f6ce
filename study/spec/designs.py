"""Study designs: small policies that turn factors and a base config into the list of trials to run.

A design only *emits* trials (Maggy's ablator idea); adding one is one function in
DESIGNS and never touches the runner. Seeds are the outermost loop, so a partly
finished study already covers every config with its first seed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from study.config import TrialConfig


@dataclass(frozen=True)
class Level:
    """One level of a factor: a label and the config fields it sets."""

    label: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Trial:
    """A config to train plus the factor levels that produced it (for reports)."""

    config: TrialConfig
    levels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.config.key()


@dataclass(frozen=True)
class Design:
    """What a design needs: the base config, the factors' levels, and a seeded sample size."""

    base: TrialConfig
    factors: dict[str, tuple[Level, ...]]
    sample_size: int = 0
    sample_seed: int = 0


Configs = list[tuple[TrialConfig, dict[str, str]]]


def _apply(base: TrialConfig, chosen: dict[str, Level]) -> TrialConfig:
    values: dict = {}
    for level in chosen.values():
        values.update(level.values)
    return base.with_values(values)  # fields and the spec's own hyperparameters by name


def full_factorial(design: Design) -> Configs:
    """Every combination of every factor's levels."""
    names = list(design.factors)
    combos = itertools.product(*(design.factors[n] for n in names)) if names else [()]
    out = []
    for combo in combos:
        chosen = dict(zip(names, combo))
        out.append((_apply(design.base, chosen), {n: lv.label for n, lv in chosen.items()}))
    return out


def one_at_a_time(design: Design) -> Configs:
    """The base config, then each factor's levels changed one at a time around it."""
    out: Configs = [(design.base, {})]
    seen = {design.base}
    for name, levels in design.factors.items():
        for level in levels:
            config = _apply(design.base, {name: level})
            if config in seen:
                continue
            seen.add(config)
            out.append((config, {name: level.label}))
    return out


def random_subset(design: Design) -> Configs:
    """A seeded random sample of the full factorial that covers every level at least once.

    Coverage comes first (greedily taking the next shuffled config that adds an
    unseen level), then the sample is filled in shuffled order; the result keeps
    the grid's order so reports read naturally.
    """
    grid = full_factorial(design)
    order = list(range(len(grid)))
    random.Random(design.sample_seed).shuffle(order)
    uncovered = {(f, lv.label) for f, levels in design.factors.items() for lv in levels}
    chosen: list[int] = []
    for index in order:
        levels = set(grid[index][1].items())
        if levels & uncovered:
            chosen.append(index)
            uncovered -= levels
    for index in order:
        if len(chosen) >= design.sample_size:
            break
        if index not in chosen:
            chosen.append(index)
    return [grid[i] for i in sorted(chosen)]


DESIGNS: dict[str, Callable[[Design], Configs]] = {
    "full_factorial": full_factorial,
    "one_at_a_time": one_at_a_time,
    "random_subset": random_subset,
}


def expand(design_name: str, design: Design, seeds: tuple[int, ...]) -> list[Trial]:
    """All trials of a study, one per (config, seed), seeds outermost."""
    configs = DESIGNS[design_name](design)
    return [Trial(config=config.replace(seed=seed), levels=levels) for seed in seeds for config, levels in configs]


def unique(trials: list[Trial]) -> list[Trial]:
    """Levels that produce the same config are trained once (the first listed wins)."""
    seen: set[str] = set()
    out = []
    for trial in trials:
        if trial.key not in seen:
            seen.add(trial.key)
            out.append(trial)
    return out
