"""Study designs: small policies that turn a spec into the list of trials to run.

A design only *emits* trials (Maggy's ablator idea); adding one never touches the
runner. Seeds are the outermost loop, so a partly finished study already covers
every config with its first seed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from study.config import TrialConfig

if TYPE_CHECKING:
    from study.spec import Level, StudySpec


@dataclass(frozen=True)
class Trial:
    """A config to train plus the factor levels that produced it (for reports)."""

    config: TrialConfig
    levels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.config.key()


def _apply(base: TrialConfig, chosen: dict[str, "Level"]) -> TrialConfig:
    values: dict = {}
    for level in chosen.values():
        values.update(level.values)
    return base.replace(**values)


def full_factorial(spec: "StudySpec") -> list[tuple[TrialConfig, dict[str, str]]]:
    """Every combination of every factor's levels."""
    names = list(spec.factors)
    combos = itertools.product(*(spec.factors[n] for n in names)) if names else [()]
    out = []
    for combo in combos:
        chosen = dict(zip(names, combo))
        out.append((_apply(spec.base, chosen), {n: lv.label for n, lv in chosen.items()}))
    return out


def one_at_a_time(spec: "StudySpec") -> list[tuple[TrialConfig, dict[str, str]]]:
    """The base config, then each factor's levels changed one at a time around it."""
    out = [(spec.base, {})]
    seen = {spec.base}
    for name, levels in spec.factors.items():
        for level in levels:
            config = _apply(spec.base, {name: level})
            if config in seen:
                continue
            seen.add(config)
            out.append((config, {name: level.label}))
    return out


def random_subset(spec: "StudySpec") -> list[tuple[TrialConfig, dict[str, str]]]:
    """A seeded random sample of the full factorial that covers every level at least once.

    Coverage comes first (greedily taking the next shuffled config that adds an
    unseen level), then the sample is filled in shuffled order; the result keeps
    the grid's order so reports read naturally.
    """
    grid = full_factorial(spec)
    order = list(range(len(grid)))
    random.Random(spec.sample_seed).shuffle(order)
    uncovered = {(f, lv.label) for f, levels in spec.factors.items() for lv in levels}
    chosen: list[int] = []
    for index in order:
        levels = set(grid[index][1].items())
        if levels & uncovered:
            chosen.append(index)
            uncovered -= levels
    for index in order:
        if len(chosen) >= spec.sample_size:
            break
        if index not in chosen:
            chosen.append(index)
    return [grid[i] for i in sorted(chosen)]


DESIGNS: dict[str, Callable[["StudySpec"], list[tuple[TrialConfig, dict[str, str]]]]] = {
    "full_factorial": full_factorial,
    "one_at_a_time": one_at_a_time,
    "random_subset": random_subset,
}


def expand(spec: "StudySpec") -> list[Trial]:
    """All trials of a study, one per (config, seed), seeds outermost."""
    configs = DESIGNS[spec.design](spec)
    return [
        Trial(config=config.replace(seed=seed), levels=levels)
        for seed in spec.seeds
        for config, levels in configs
    ]
