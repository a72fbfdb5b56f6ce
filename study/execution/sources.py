"""What a worker takes from a queue and how: the TrialSource protocol and what it works with.

GridSource serves an ablation grid (enqueued trials only, taken a group at a time);
TuneSource serves a tuning study (`ask()`: a re-queued trial first, else a
sampler proposal, while fewer than n_trials results exist). The worker loop
(study.execution.worker) is the same for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from study.data.arrays import DatasetArrays
from study.data.splits import SplitCache
from study.execution.signals import StopFlag
from study.execution.worker_spec import WorkerSpec
from study.queue.ledger import TrialLedger
from study.queue.protocol import Queue
from study.queue.records import Lease
from study.tracking.record import MlflowRecord
from study.training.executors.base import ExecutionSettings, Executor


@dataclass(frozen=True)
class WorkerOptions(WorkerSpec):
    """A worker's spec (study.execution.worker_spec) plus what stays in its process: the data its caller
    already loaded."""

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
    queue: Queue
    exp_id: str
    splits: SplitCache
    settings: ExecutionSettings
    stop: StopFlag
    worker: str
    open_parent: Callable[[], None]  # start this worker's MLflow parent run on first use
    executor: Callable[[str], Executor]  # executor by name, created once per worker

    def ledger(self) -> TrialLedger:
        """The queue and this study's MLflow runs, kept in agreement (study.queue.ledger)."""
        return TrialLedger(self.queue, MlflowRecord(self.exp_id, self.study_name))


@dataclass(frozen=True)
class Verdict:
    """How a taken trial ended: `outcome` names it for the progress line and the summary."""

    outcome: str  # completed | diverged | failed | pruned | recovered | duplicate | lost
    val_acc: float | None = None
    seconds: float = 0.0
    error: str = ""  # a failed trial's error, first line (a command's: its exit status and last line)


class TrialSource(Protocol):
    """What a worker takes from a queue, how it trains it and how it reports it."""

    kind: str  # tag of the worker's MLflow parent run: ablation | tune
    keeps_models: bool  # whether each trial's best model is saved as an artifact

    def next(self, queue: Queue, group_size: int) -> list[Lease]: ...

    def done(self, queue: Queue) -> bool: ...

    def run(self, leases: Sequence[Lease], ctx: TrainingContext) -> list[Verdict]: ...

    def describe(self, queue: Queue, finished: Sequence[tuple[Lease, Verdict]]) -> list[str]: ...

    def idle_message(self, queue: Queue) -> str: ...

    def status_text(self, queue: Queue) -> str: ...


def describe_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
