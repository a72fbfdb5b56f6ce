"""Executors by name, and which trials each can train together; importable before Keras is.

The executor classes import Keras, which must come after the backend is chosen
(study.training.backend), so they are named here by module and imported by
`executor_for` (the one function-level import of an executor, and why).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from study.config import DEFAULTS, TrialConfig, structure_key
from study.training.backend import name_backend, select_backend


@dataclass(frozen=True)
class ExecutorEntry:
    name: str
    target: str  # "module:Class", imported only once the backend is chosen
    group_key: Callable[[TrialConfig], str | None]  # equal keys can be trained in one call; None: alone
    describe: str
    lease_size: int = 1  # the most trials a worker takes from the queue at once for this executor
    # Factors this executor does not implement: a trial that sets one (to anything but its default) is refused
    # (inert_problem), never trained as if it were not set. The conformance suite checks every other factor.
    inert: tuple[str, ...] = ()
    keras: bool = True  # trains with Keras (the worker chooses its backend first); False: your code, which may not use Keras at all


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
    "function": ExecutorEntry("function", "study.training.executors.function_executor:FunctionExecutor", alone,
                              "your training function (train: package.module:function), one trial at a time",
                              keras=False),
    "command": ExecutorEntry("command", "study.training.executors.command_executor:CommandExecutor", alone,
                             "your command line (command: ...), a guarded process per trial", keras=False),
}


def uses_keras(config: TrialConfig) -> bool:
    """Whether the trial trains through Keras (its backend must be chosen before), not through your own code."""
    return EXECUTORS[config.executor].keras


def choose_backend(config: TrialConfig, threads: int | None = None) -> None:
    """Before training `config`'s trials: select its Keras backend (imports Keras), or, for your own code, only
    name it in the environment (KERAS_BACKEND, for code that imports Keras itself): a worker that runs a
    scikit-learn function never pays TensorFlow's start-up."""
    if uses_keras(config):
        select_backend(config.backend, threads=threads)
    else:
        name_backend(config.backend)


def executor_for(name: str):
    """The executor instance (imports Keras: call after study.training.backend.select_backend)."""
    entry = EXECUTORS[name]
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()  # backend-selection import: Keras comes after it


def inert_problem(config: TrialConfig) -> str | None:
    """Why `config`'s executor refuses it (a factor set that the executor declares inert), or None."""
    entry = EXECUTORS.get(config.executor)
    if entry is None:
        return None
    values = config.as_dict()
    for name in entry.inert:
        if values[name] != DEFAULTS[name]:
            return (f"{name}={values[name]!r}: executor {entry.name} does not implement {name} (declared inert); "
                    f"use another executor or {name}: {DEFAULTS[name]!r}")
    return None


def group_of(config: TrialConfig) -> str | None:
    """The group a queued trial belongs to (stored with it, so any worker can take the group together)."""
    return EXECUTORS[config.executor].group_key(config)


def structure_group(config: TrialConfig) -> str:
    """Trials with one model structure, data and training length: what one fused program can train."""
    shared = dict(structure_key(config))
    shared.update(dataset=config.dataset, validation=config.validation, train_subset=config.train_subset,
                  epochs=config.epochs, batch_size=config.batch_size)
    return repr(sorted(shared.items()))
