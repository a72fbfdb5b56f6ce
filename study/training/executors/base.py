"""The executor seam: what any way of training trials must do, whatever it does inside.

An executor takes a batch of trial configs (a group the queue handed one worker) and
returns one TrialResult per trial, in order. It reports each trial's epochs as they
end through that trial's TrialHooks (MLflow logging, Optuna pruning), and stops at
the next batch when the worker's stop event is set (raising Interrupted). Executors
are checked by one conformance suite (tests/executors), the scikit-learn
`check_estimator` idea: diverged on NaN, interruption, best-epoch restore, hooks per
epoch, and bit-identity with plain Keras where the executor claims it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from study.config import TrialConfig
from study.data.arrays import Splits
from study.training.results import TrialResult


@dataclass(frozen=True)
class ExecutionSettings:
    """How trials are executed; none of these change what they compute."""

    steps_per_execution: int = 128
    eval_batch_size: int = 2048
    verbose: int = 0
    save_model: bool = True
    reuse_compiled: bool = True  # the Keras executor's compiled-model cache (study.training.keras_internals)
    fuse_steps: bool = True  # JAX: steps_per_execution steps as one XLA program (study.training.keras_internals)
    # A learning-curve PNG per MLflow run: ~0.3 s per trial (12% of a JAX trial here), and the
    # MLflow UI charts every logged per-epoch metric anyway; `--trial-figures` turns it on.
    trial_figures: bool = False
    group_size: int | None = None  # executors that train groups: the most trials per call (None: decide)
    # Fused executor: trials of one seed share their batches (one gather per step for the group; best on
    # a CPU); False groups every seed of a structure together, each trial its own batches (fewer, larger
    # programs: what a GPU wants). Either way every program has the platform's fixed number of lanes.
    share_batches: bool = True
    # Per-epoch mechanism probes (study.training.probes: each kernel's gradient norm, each hidden layer's
    # saturated share) logged with the epoch's metrics; they read the weights only, never change training.
    probes: bool = True


def _never(epoch: int, logs: dict[str, float]) -> bool:
    return False


def _ignore(epoch: int, logs: dict[str, float]) -> None:
    return None


@dataclass
class TrialHooks:
    """One trial's listeners: `on_epoch_end(epoch, logs)` after each epoch (logs hold
    EPOCH_METRICS, and the probes' metrics when ExecutionSettings.probes); `should_stop(epoch, logs)` asked after it (True ends the trial there,
    e.g. Optuna's pruner; the trial's last epoch is never asked)."""

    on_epoch_end: Callable[[int, dict[str, float]], None] = _ignore
    should_stop: Callable[[int, dict[str, float]], bool] = _never


@dataclass
class Batch:
    """What an executor gets: configs, each one's data splits and hooks, and where to write files."""

    configs: Sequence[TrialConfig]
    splits: Sequence[Splits]
    hooks: Sequence[TrialHooks]
    workdir: Path
    stop: threading.Event = field(default_factory=threading.Event)


class Executor(Protocol):
    """Trains a batch of trials and returns their results in order.

    Raises Interrupted (a KeyboardInterrupt) when `batch.stop` is set; any other
    exception means the whole batch failed. `bit_identical_to_keras`: whether each
    result equals, bit for bit, a plain Keras `fit` of the same config on the same backend.
    """

    name: str
    bit_identical_to_keras: bool

    def run(self, batch: Batch, settings: ExecutionSettings) -> list[TrialResult]: ...
