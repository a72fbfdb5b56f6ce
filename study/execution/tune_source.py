"""Tuning trials for the shared worker loop (study.execution.worker): what `study tune --workers N`
and `study worker TUNE_SPEC.yaml` take from the queue.

A tuning study is the same kind of queue as an ablation grid (study.queue), driven
by Optuna's ask-and-tell instead of enqueued keys: `ask()` (study.tuning.asked) pops a re-queued or
enqueued trial first, else asks the sampler for a new point. So every worker gets the
same guarantees as on a grid: heartbeats, stale trials re-queued with their params,
SIGINT/SIGTERM re-queue the trial in progress, a result is told only by the worker
that still holds the trial.

How many trials: the study stops at `n_trials` results (COMPLETE + PRUNED), counted
across all workers. Workers asking at the same moment could overshoot it; a trial that
finds itself beyond the first `n_trials` live ones is dropped before training (failed,
`trial_status=surplus`), so exactly `n_trials` results are trained. Each worker also
starts at most the trials that were missing when it joined (failed trials use up that
budget, so a setup that always fails cannot loop forever) and stops taking new trials
after the spec's `timeout`, both like `Study.optimize(n_trials=..., timeout=...)`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from study.core.errors import Interrupted
from study.core.names import STATUS_ATTR
from study.core.status import NOT_RESULTS, TrialStatus
from study.core.text import format_duration
from study.execution.sources import TrainingContext, Verdict, describe_value
from study.execution.status_text import tune_status_text
from study.execution.tune_objective import Objective, TrialFailed, TrialLost, TrialPruned
from study.queue.records import COMPLETED, FAILED, PRUNED, RUNNING, WAITING, Lease, QueuedTrial
from study.queue.trial_queue import TrialQueue
from study.spec.tune_spec import TuneSpec
from study.tuning.asked import AskedTrial, ask
from study.tuning.optuna_setup import COUNTED_STATES

SURPLUS = TrialStatus.SURPLUS.value


def counted(queue: TrialQueue) -> int:
    return len(queue.trials(COUNTED_STATES))


def invocation_counts(queue: TrialQueue, first_number: int) -> dict[str, int]:
    """Results of the trials numbered from `first_number` on, by state (Optuna's names: COMPLETE, PRUNED,
    FAIL). FAIL counts real failures only: attempts that were re-queued or dropped (see NOT_RESULTS) are
    not results."""
    counts: dict[str, int] = {}
    for trial in queue.trials():
        if trial.number < first_number or trial.state in (RUNNING, WAITING):
            continue
        if trial.state == FAILED and (trial.user_attrs.get(STATUS_ATTR) in NOT_RESULTS
                                      or STATUS_ATTR not in trial.user_attrs):
            continue
        counts[trial.state_name] = counts.get(trial.state_name, 0) + 1
    return counts


class TuneSource:
    """Optuna-sampled trials of a tuning spec, trained through study.execution.tune_objective.Objective."""

    kind = "tune"
    keeps_models = False  # dozens of trials; the retrained base and tuned arms keep theirs

    def __init__(self, spec: TuneSpec) -> None:
        self.spec = spec
        self.budget: int | None = None  # trials this worker may still start; set on the first `next`
        self.deadline: float | None = None
        self.started = time.monotonic()
        self.finished = 0
        self._asked: dict[int, AskedTrial] = {}
        self._grid_only = spec.sampler.name == "grid"  # the grid is enqueued whole (optuna_setup.enqueued_points)

    # ------------------------------------------------------------------ TrialSource

    def next(self, queue: TrialQueue, group_size: int = 1) -> list[Lease]:
        """One trial at a time: the sampler learns from each result before it proposes the next."""
        lease = self._next(queue)
        return [lease] if lease is not None else []

    def _next(self, queue: TrialQueue) -> Lease | None:
        if self.budget is None:
            self.budget = max(0, self.spec.n_trials - counted(queue))
            self.deadline = time.monotonic() + self.spec.timeout if self.spec.timeout else None
            self.started = time.monotonic()
        if self._spent() or counted(queue) + len(queue.trials((RUNNING,))) >= self.spec.n_trials:
            return None
        if self._grid_only and not queue.trials((WAITING,)):
            return None  # every grid point is taken; the sampler would only propose duplicates
        lease, trial = ask(queue)
        if self._surplus(queue, lease) or (self._grid_only and not self._enqueued(queue, lease)):
            asked = queue.trial(lease.number)
            queue.fail(lease, {STATUS_ATTR: SURPLUS}, requeue=bool(asked.params or asked.fixed))
            return None
        self.budget -= 1
        self._asked[lease.number] = trial
        return lease

    def done(self, queue: TrialQueue) -> bool:
        """This worker's budget or time is spent, or the study has its results and nothing runs."""
        if self._spent():
            return True
        if queue.trials((RUNNING,)):
            return False
        return counted(queue) >= self.spec.n_trials or (self._grid_only and not queue.trials((WAITING,)))

    def run(self, leases: Sequence[Lease], ctx: TrainingContext) -> list[Verdict]:
        lease, = leases
        trial = self._asked.pop(lease.number)
        queue, ledger = ctx.queue, ctx.ledger()
        if ctx.stop.is_set():
            raise Interrupted()
        ledger.close_earlier_attempts(lease)  # the runs their lost workers left open
        ctx.open_parent()
        objective = Objective(self.spec, ctx, ledger, lease)
        started = time.perf_counter()
        try:
            value = objective(trial)
        except TrialPruned:
            queue.prune(lease, {})
            return [Verdict(TrialStatus.PRUNED, None, time.perf_counter() - started)]
        except TrialFailed as exc:
            queue.fail(lease, {STATUS_ATTR: TrialStatus.FAILED.value, "error": str(exc)[:500]})
            return [Verdict(TrialStatus.FAILED, None, time.perf_counter() - started)]
        except TrialLost:
            return [Verdict(TrialStatus.LOST, None, time.perf_counter() - started)]
        seconds = time.perf_counter() - started
        if not math.isfinite(value):
            queue.fail(lease, {})  # the trial's own status (diverged) is already recorded
            return [Verdict(TrialStatus.DIVERGED, None, seconds)]
        queue.complete(lease, value, {})
        return [Verdict(TrialStatus.COMPLETED, value, seconds)]

    def describe(self, queue: TrialQueue, finished: Sequence[tuple[Lease, Verdict]]) -> list[str]:
        return [self._line(queue, lease, verdict) for lease, verdict in finished]

    def _line(self, queue: TrialQueue, lease: Lease, verdict: Verdict) -> str:
        """One line per trial: results so far, the trial's params, state and value, epochs, time, best, ETA."""
        self.finished += 1
        spec = self.spec
        trial = queue.trial(lease.number)
        trials = queue.trials()
        results = [t for t in trials if t.state in COUNTED_STATES]
        params = " ".join(f"{k}={describe_value(v)}" for k, v in trial.params.items())
        epochs = f"{trial.steps}/{spec.config_for(dict(trial.params)).epochs} ep"
        # A pruned trial's value is the last value it reported (Optuna's convention), not a final result.
        value = "" if trial.value is None else f"{spec.metric} {trial.value:.4f}"
        if trial.state == PRUNED and value:
            value = f"at stop {value}"
        best = _best(trials, spec.direction)
        best_text = f"best {best.value:.4f} (#{best.number})" if best is not None else ""
        running = sum(t.state == RUNNING for t in trials)
        left = max(0, spec.n_trials - len(results))
        mean = (time.monotonic() - self.started) / self.finished
        eta = f"ETA {format_duration(mean * left / max(1, running))}" if left else ""
        return (f"[{len(results)}/{spec.n_trials}] #{trial.number} {params} | {trial.state_name:<8} {value} | "
                f"{epochs} | {verdict.seconds:.1f}s | {best_text} | {eta}").rstrip(" |")

    def idle_message(self, queue: TrialQueue) -> str:
        done = counted(queue)
        if done >= self.spec.n_trials:
            return (f"tuning study {self.spec.name} already has its {done}/{self.spec.n_trials} results: nothing to do "
                    "(raise n_trials to search further)")
        if self._spent():
            return f"tuning study {self.spec.name}: this worker's trial budget or timeout is spent ({done} results)"
        return f"tuning study {self.spec.name}: nothing to do ({done}/{self.spec.n_trials} results)"

    def status_text(self, queue: TrialQueue) -> str:
        spec = self.spec
        return tune_status_text(queue, spec.name, spec.source, spec.n_trials, spec.metric, spec.direction)

    # ------------------------------------------------------------------ internals

    def _spent(self) -> bool:
        if self.budget is None:
            return False
        return self.budget <= 0 or (self.deadline is not None and time.monotonic() >= self.deadline)

    @staticmethod
    def _enqueued(queue: TrialQueue, lease: Lease) -> bool:
        """Whether Optuna handed us an enqueued point (a grid's), not a fresh sampler proposal: two workers
        asking for the last waiting point at once leave one of them with a proposal the grid never had."""
        return queue.trial(lease.number).fixed

    def _surplus(self, queue: TrialQueue, lease: Lease) -> bool:
        """Whether `lease` came after the first n_trials live trials (a race between workers asking)."""
        live = sorted(t.number for t in queue.trials((*COUNTED_STATES, RUNNING)))
        return lease.number not in live[:self.spec.n_trials]


def _best(trials: list[QueuedTrial], direction: str) -> QueuedTrial | None:
    complete = [t for t in trials if t.state == COMPLETED and t.value is not None]
    if not complete:
        return None
    return (max if direction == "maximize" else min)(complete, key=lambda t: t.value)
