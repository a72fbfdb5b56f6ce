"""What a worker takes from a queue and how: the TrialSource protocol and what it works with.

GridSource serves an ablation grid (enqueued trials only, taken a group at a time);
TuneSource serves a tuning study (`queue.ask()`: a re-queued trial first, else a
sampler proposal, while fewer than n_trials results exist). The worker loop
(study.execution.worker) is the same for both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from study.data.arrays import DatasetArrays
from study.data.splits import SplitCache
from study.execution.signals import StopFlag, say
from study.execution.worker_spec import WorkerSpec
from study.queue.trial_queue import Claim, TrialQueue
from study.training.executors.base import ExecutionSettings, Executor


@dataclass(frozen=True)
class WorkerOptions(WorkerSpec):
    """A worker's spec (study.execution.worker_spec) plus what stays in its process: where its lines go,
    the data its caller already loaded."""

    log: Callable[[str], None] = say
    preloaded: dict[str, DatasetArrays] = field(default_factory=dict)  # datasets the caller already verified


@dataclass
class WorkerSummary:
    counts: dict[str, int] = field(default_factory=dict)  # this worker's trials by outcome
    interrupted: bool = False
    wall_time_s: float = 0.0


@dataclass
class TrainingContext:
    """What a worker loads once and reuses for every trial (data stays in memory)."""

    study_name: str
    queue: TrialQueue
    exp_id: str
    splits: SplitCache
    settings: ExecutionSettings
    stop: StopFlag
    worker: str
    open_parent: Callable[[], None]  # start this worker's MLflow parent run on first use
    executor: Callable[[str], Executor]  # executor by name, created once per worker


@dataclass(frozen=True)
class Verdict:
    """How a taken trial ended: `outcome` names it for the progress line and the summary."""

    outcome: str  # completed | diverged | failed | pruned | recovered | duplicate | lost
    val_acc: float | None = None
    seconds: float = 0.0


class TrialSource(Protocol):
    """What a worker takes from a queue, how it trains it and how it reports it."""

    kind: str  # tag of the worker's MLflow parent run: ablation | tune
    keeps_models: bool  # whether each trial's best model is saved as an artifact

    def next(self, queue: TrialQueue, group_size: int) -> list[Claim]: ...

    def done(self, queue: TrialQueue) -> bool: ...

    def run(self, claims: Sequence[Claim], ctx: TrainingContext) -> list[Verdict]: ...

    def describe(self, queue: TrialQueue, finished: Sequence[tuple[Claim, Verdict]]) -> list[str]: ...

    def idle_message(self, queue: TrialQueue) -> str: ...

    def status_text(self, queue: TrialQueue) -> str: ...


def objective_value(val_acc: float | None) -> float:
    """What Optuna stores for a grid trial: its final val accuracy (0 if it diverged before any finite epoch)."""
    return float(val_acc) if val_acc is not None and math.isfinite(val_acc) else 0.0


def describe_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
