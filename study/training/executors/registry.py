"""Executors by name, and which trials each can train together; importable before Keras is.

The executor classes import Keras, which must come after the backend is chosen
(study.training.backend), so they are named here by module and imported by
`executor_for` (the one function-level import of an executor, and why).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from study.config import TrialConfig, structure_key


@dataclass(frozen=True)
class ExecutorEntry:
    name: str
    target: str  # "module:Class", imported only once the backend is chosen
    group_key: Callable[[TrialConfig], str | None]  # equal keys can be trained in one call; None: alone
    describe: str
    lease_size: int = 1  # the most trials a worker takes from the queue at once for this executor


def alone(config: TrialConfig) -> str | None:
    return None


SEED_PART = "|seed="  # a fused group is "<program>|seed=<seed>": one compiled program serves every seed


def fused_group(config: TrialConfig) -> str:
    """One structure, data, training length and seed: the trials one fused program trains on shared batches."""
    return f"{structure_group(config)}{SEED_PART}{config.seed}"


def program_of(group: str | None) -> str | None:
    """The compiled program a queued group needs (its structure, data and length; the seed aside), so a
    worker can prefer groups whose program it has already traced and compiled (a few seconds each)."""
    return group.rpartition(SEED_PART)[0] or group if group else None


EXECUTORS: dict[str, ExecutorEntry] = {
    "keras": ExecutorEntry("keras", "study.training.keras_executor:KerasExecutor", alone,
                           "one trial at a time through Keras' own fit (the reference)"),
    "fused": ExecutorEntry("fused", "study.training.fused.executor:FusedExecutor", fused_group,
                           "a group of same-structure trials as one vmapped XLA program (JAX)", lease_size=256),
}


def executor_for(name: str):
    """The executor instance (imports Keras: call after study.training.backend.select_backend)."""
    entry = EXECUTORS[name]
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()  # backend-selection import: Keras comes after it


def group_of(config: TrialConfig) -> str | None:
    """The group a queued trial belongs to (stored with it, so any worker can take the group together)."""
    return EXECUTORS[config.executor].group_key(config)


def structure_group(config: TrialConfig) -> str:
    """Trials with one model structure, data and training length: what one fused program can train."""
    shared = dict(structure_key(config))
    shared.update(dataset=config.dataset, validation=config.validation, train_subset=config.train_subset,
                  epochs=config.epochs, batch_size=config.batch_size)
    return repr(sorted(shared.items()))
