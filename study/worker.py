"""A worker: takes trials from the queue one at a time, trains each in an MLflow child
run, tells the queue; stops when no trial waits or runs anywhere.

`study run --workers N` runs N of these (one in-process, or N processes); `study
worker` runs one on any machine that reaches the storage and the tracking server.

Exactly once, on both sides:
- the queue hands a trial to one worker only (study.engine);
- before training, the worker asks MLflow whether the key already has a finished
  run (a worker that died after recording but before telling the queue): if so it
  adopts that result instead of training again;
- just before recording a result FINISHED, it checks it still holds the trial (a
  worker that stalled past the grace period has lost it to another worker).

Stopping: the first SIGINT/SIGTERM sets a flag; the trial in progress stops at its
next batch, is recorded `interrupted` (MLflow KILLED) and re-queued, and the worker
exits. A second signal stops at once (the trial then comes back via its heartbeat).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from study.config import TrialConfig
from study.designs import Trial
from study.engine import (
    CONFIG_ATTR,
    DUPLICATE_ATTR,
    LEVELS_ATTR,
    RUN_ID_ATTR,
    STATUS_ATTR,
    WORKER_ATTR,
    Beacon,
    Claim,
    QueueItem,
    TrialQueue,
    WorkerRecord,
)
from study.runner import (
    Interrupted,
    format_duration,
    run_tracked,
    spec_hash,
    unique_trials,
)
from study.spec import StudySpec
from study.status import collect, key_states

if TYPE_CHECKING:
    from study.data import Mnist, SplitCache
    from study.train import ExecutionSettings
    from study.tune_spec import TuneSpec

OPTUNA_STUDY_TAG, NUMBER_TAG = "optuna_study", "optuna_trial_number"
DONE_STATUSES = ("completed", "diverged")


def say(line: str) -> None:
    """Print a progress line at once: workers share one terminal or log file with others."""
    print(line, flush=True)


@dataclass(frozen=True)
class WorkerOptions:
    data_dir: str | None = None
    steps_per_execution: int | None = None
    trial_figures: bool = False  # a learning-curve PNG per MLflow run (train.ExecutionSettings)
    threads: int | None = None  # math-library threads of this process (None: the library's default)
    tracking_uri: str | None = None
    label: str = ""  # prefix of this worker's progress lines when several share a terminal
    log: Callable[[str], None] = say
    mnist: Mnist | None = None  # already loaded and verified by the caller (in-process worker)


@dataclass
class WorkerSummary:
    counts: dict[str, int] = field(default_factory=dict)  # this worker's trials by outcome
    interrupted: bool = False
    wall_time_s: float = 0.0


def threads_per_worker(workers: int) -> int | None:
    """Split the cores between local workers; one worker keeps the library's default.

    Measured here: two one-thread TF processes gave 1.75x the throughput of one,
    two default-threaded ones only 1.27x (they fight over the same cores).
    """
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- stopping


class StopFlag:
    """SIGINT/SIGTERM as a request: the first sets the flag, a second one raises at once."""

    def __init__(self, log: Callable[[str], None] = say) -> None:
        self.event = threading.Event()
        self.log = log
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            raise Interrupted()
        self.event.set()
        self.log(f"{signal.Signals(signum).name}: stopping; the trial in progress is recorded as interrupted "
                 "and re-queued (signal again to stop at once)")


# --------------------------------------------------------------------------- what to train


@dataclass
class TrainingContext:
    """What a worker loads once and reuses for every trial (data stays in memory)."""

    spec: StudySpec
    queue: TrialQueue
    exp_id: str
    splits: SplitCache
    settings: ExecutionSettings
    stop: StopFlag
    worker: str
    open_parent: Callable[[], None]  # start this worker's MLflow parent run on first use


@dataclass(frozen=True)
class Verdict:
    """How a taken trial ended: `outcome` names it for the progress line and the summary."""

    outcome: str  # completed | diverged | failed | recovered | duplicate | lost
    val_acc: float | None = None
    seconds: float = 0.0


class TrialSource(Protocol):
    """What a worker takes from a queue, how it trains it and how it reports it.

    GridSource serves an ablation grid (enqueued trials only); study.tune_source's
    TuneSource serves a tuning study (`queue.ask()`: a re-queued trial first, else a
    sampler proposal, while fewer than n_trials results exist).
    """

    kind: str  # tag of the worker's MLflow parent run: ablation | tune
    keeps_models: bool  # whether each trial's best model is saved as an artifact

    def next(self, queue: TrialQueue) -> Claim | None: ...

    def done(self, queue: TrialQueue) -> bool: ...

    def run(self, claim: Claim, ctx: TrainingContext) -> Verdict: ...

    def describe(self, queue: TrialQueue, claim: Claim, verdict: Verdict) -> str: ...

    def idle_message(self, queue: TrialQueue) -> str: ...


class GridSource:
    """The trials of an ablation spec, enqueued once each by key."""

    kind = "ablation"
    keeps_models = True

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.trials = unique_trials(spec)
        self.keys = [t.key for t in self.trials]

    def items(self) -> list[QueueItem]:
        return [QueueItem(key=t.key, config=t.config.as_dict(), levels=dict(t.levels)) for t in self.trials]

    def enqueue(self, queue: TrialQueue, mlflow_done: set[str] | None = None) -> int:
        """Queue the spec's keys that are not waiting, running or complete; with `mlflow_done`,
        also those the queue calls complete but MLflow has no finished run of (MLflow is the record)."""
        again: set[str] = set()
        if mlflow_done is not None:
            states = key_states(queue.trials(), self.keys)
            again = {k for k, s in states.items() if s in DONE_STATUSES and k not in mlflow_done}
        return queue.enqueue(self.items(), again=again)

    def key_status(self, queue: TrialQueue) -> dict[str, str]:
        return key_states(queue.trials(), self.keys)

    def next(self, queue: TrialQueue) -> Claim | None:
        return queue.claim()

    def done(self, queue: TrialQueue) -> bool:
        return not queue.has_work()

    def run(self, claim: Claim, ctx: TrainingContext) -> Verdict:
        from study import tracking
        from study.callbacks import StopOnRequest

        queue = ctx.queue
        config = TrialConfig(**claim.user_attrs[CONFIG_ATTR])
        if config.key() != claim.key:
            queue.fail(claim, {STATUS_ATTR: "failed", "error": f"config hashes to {config.key()}, not {claim.key}: "
                                                                  "queued by another version of the code"})
            return Verdict("failed")
        trial = Trial(config, dict(claim.user_attrs.get(LEVELS_ATTR, {})))
        queue.set_attrs(claim, {WORKER_ATTR: ctx.worker})
        recorded = tracking.finished_trial_run(ctx.exp_id, claim.key)
        if recorded is not None:
            return self._adopt(claim, recorded, queue)
        tracking.reap_key_runs(ctx.exp_id, claim.key, "its worker lost the trial (killed or stalled); re-queued")
        if ctx.stop.is_set():
            raise Interrupted()
        ctx.open_parent()
        outcome = run_tracked(
            trial, self.spec.name, ctx.splits, ctx.settings,
            tags={OPTUNA_STUDY_TAG: self.spec.name, NUMBER_TAG: str(claim.number)},
            extra_callbacks=(StopOnRequest(ctx.stop.event),),
            on_start=lambda run_id: queue.set_attrs(claim, {RUN_ID_ATTR: run_id}),
            still_ours=lambda: queue.holds(claim))
        val_acc = outcome.result.final.get("final_val_accuracy") if outcome.result is not None else None
        if outcome.status in DONE_STATUSES:
            queue.complete(claim, objective_value(val_acc), {STATUS_ATTR: outcome.status})
        elif outcome.status == "failed":
            queue.fail(claim, {STATUS_ATTR: "failed", "error": outcome.error.splitlines()[0][:500]})
        return Verdict(outcome.status, val_acc, outcome.seconds)

    def describe(self, queue: TrialQueue, claim: Claim, verdict: Verdict) -> str:
        """One line per trial: study-wide done/total, the trial, its outcome, time, study-wide ETA."""
        status = collect(queue, self.keys)
        levels = claim.user_attrs.get(LEVELS_ATTR) or {}
        config = claim.user_attrs.get(CONFIG_ATTR) or {}
        label = " ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
        acc = f"val_acc {verdict.val_acc:.4f}" if verdict.val_acc is not None else "val_acc   n/a "
        eta = f"ETA {format_duration(status.eta_s)}" if status.eta_s is not None and not status.complete else ""
        return (f"[{status.done}/{status.total}] {label} seed={config.get('seed')} | {verdict.outcome:<9} {acc} | "
                f"{verdict.seconds:5.1f}s | {eta}").rstrip()

    def idle_message(self, queue: TrialQueue) -> str:
        """What a worker that finds nothing to take says (e.g. one joining a complete study)."""
        done = sum(s in DONE_STATUSES for s in self.key_status(queue).values())
        if done == len(self.keys):
            return f"study {self.spec.name} is already complete ({done}/{done} trials done): nothing to do"
        return f"study {self.spec.name}: nothing to do, no trial waits or runs ({done}/{len(self.keys)} trials done)"

    @staticmethod
    def _adopt(claim: Claim, recorded: Any, queue: TrialQueue) -> Verdict:
        """The key already has a finished MLflow run: tell the queue its result, train nothing."""
        done_sibling = next((t for t in queue.siblings(claim) if t.state.name == "COMPLETE"), None)
        if done_sibling is not None:
            queue.fail(claim, {STATUS_ATTR: "duplicate", DUPLICATE_ATTR: done_sibling.number})
            return Verdict("duplicate")
        val_acc = recorded.data.metrics.get("final_val_accuracy")
        status = recorded.data.tags.get("trial_status", "completed")
        queue.complete(claim, objective_value(val_acc), {STATUS_ATTR: status, RUN_ID_ATTR: recorded.info.run_id,
                                                         "recovered": True})
        return Verdict("recovered", val_acc)


def objective_value(val_acc: float | None) -> float:
    """What Optuna stores for a grid trial: its final val accuracy (0 if it diverged before any finite epoch)."""
    return float(val_acc) if val_acc is not None and math.isfinite(val_acc) else 0.0


# --------------------------------------------------------------------------- the loop


def run_worker(spec: StudySpec | TuneSpec, queue: TrialQueue, source: TrialSource, options: WorkerOptions,
               stop: StopFlag | None = None) -> WorkerSummary:
    """Take and train trials until none waits or runs anywhere (or a stop is requested)."""
    log = options.log
    prefix = f"[{options.label}] " if options.label else ""
    summary = WorkerSummary()
    if source.done(queue):
        log(prefix + source.idle_message(queue))
        return summary
    own_stop = stop is None
    stop = stop or StopFlag(log).install()
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            ctx = _load(spec, queue, source, options, stop, stack, log, prefix)
            if stop.is_set():  # asked to stop while loading: nothing taken, nothing to give back
                summary.interrupted = True
                return summary
            record = WorkerRecord(worker=ctx.worker, host=socket.gethostname(), pid=os.getpid(), state="idle",
                                  last_seen=time.time())
            beacon = stack.enter_context(Beacon(queue, record))
            _loop(source, ctx, beacon, summary, log, prefix)
            if summary.interrupted:
                import mlflow

                if mlflow.active_run() is not None:
                    mlflow.end_run("KILLED")
    except KeyboardInterrupt:  # the second signal: stop now, the heartbeat brings the trial back
        summary.interrupted = True
    finally:
        if own_stop:
            stop.restore()
        summary.wall_time_s = time.perf_counter() - started
    return summary


def _load(spec: StudySpec | TuneSpec, queue: TrialQueue, source: TrialSource, options: WorkerOptions,
          stop: StopFlag, stack: ExitStack, log: Callable[[str], None], prefix: str) -> TrainingContext:
    from study import tracking
    from study.backend import select_backend

    select_backend(spec.base.backend, threads=options.threads)
    uri = tracking.configure(options.tracking_uri)
    exp_id = tracking.experiment_id(spec.name, uri)

    from study.data import SplitCache, load_mnist
    from study.train import ExecutionSettings

    mnist = options.mnist or load_mnist(options.data_dir)
    splits = SplitCache(mnist)
    settings = ExecutionSettings(steps_per_execution=options.steps_per_execution or spec.steps_per_execution,
                                 save_model=source.keeps_models, trial_figures=options.trial_figures)
    import gc

    # Everything loaded so far (TF, JAX, MLflow, the data) lives as long as the worker: moved out
    # of the collector's sight, the full collection Keras' clear_session runs before every trial
    # takes milliseconds instead of ~0.4 s (measured on this 2-core machine).
    gc.collect()
    gc.freeze()
    name = worker_name()
    log(f"{prefix}worker {name} joined study {spec.name} (threads {options.threads or 'default'}; "
        f"data: {mnist.source})")
    opened: list[bool] = []

    def open_parent() -> None:
        """This worker's parent run, unless the caller's is active (`study tune` trains in its own)."""
        import mlflow

        if not opened and mlflow.active_run() is None:
            stack.enter_context(tracking.parent_run(
                exp_id, spec.name, spec_hash(spec), tracking.command_line(),
                {"data_source": mnist.source, "spec_file": spec.source, OPTUNA_STUDY_TAG: spec.name,
                 "kind": source.kind}))
            tracking.log_json(spec.raw, "spec.json")
            opened.append(True)

    return TrainingContext(spec, queue, exp_id, splits, settings, stop, name, open_parent)


def _loop(source: TrialSource, ctx: TrainingContext, beacon: Beacon, summary: WorkerSummary,
          log: Callable[[str], None], prefix: str) -> None:
    queue, stop = ctx.queue, ctx.stop
    while not stop.is_set():
        queue.fail_stale()
        claim = source.next(queue)
        if claim is None:
            if source.done(queue):
                return
            stop.wait(queue.settings.heartbeat_interval_s)  # others still run trials that may come back
            continue
        with beacon.hold(claim):
            try:
                verdict = source.run(claim, ctx)
            except KeyboardInterrupt:
                queue.fail(claim, {STATUS_ATTR: "interrupted", WORKER_ATTR: ctx.worker}, requeue=True)
                summary.interrupted = True
                summary.counts["interrupted"] = summary.counts.get("interrupted", 0) + 1
                log(f"{prefix}trial {claim.number} interrupted and re-queued")
                return
            except BaseException:
                queue.fail(claim, {STATUS_ATTR: "interrupted", WORKER_ATTR: ctx.worker}, requeue=True)
                raise
        summary.counts[verdict.outcome] = summary.counts.get(verdict.outcome, 0) + 1
        beacon.update(done=beacon.record.done + 1)
        log(prefix + source.describe(queue, claim, verdict))


# --------------------------------------------------------------------------- local worker processes


def spawn_workers(spec: StudySpec, storage_url: str, tracking_uri: str, count: int, options: WorkerOptions,
                  backend: str | None = None, log: Callable[[str], None] = say) -> bool:
    """Run `count` `python -m study worker` processes on this queue; return True if interrupted.

    Each runs in its own session, so a terminal's Ctrl-C reaches only this process,
    which passes it on exactly once (a second Ctrl-C is passed on as a second signal).
    """
    command = [sys.executable, "-m", "study", "worker", spec.source, "--storage", storage_url,
               "--tracking-uri", tracking_uri]
    if options.data_dir:
        command += ["--data-dir", str(options.data_dir)]
    if backend:
        command += ["--backend", backend]
    if options.steps_per_execution:
        command += ["--steps-per-execution", str(options.steps_per_execution)]
    if options.trial_figures:
        command += ["--trial-figures"]
    if options.threads:
        command += ["--threads", str(options.threads)]
    sys.stdout.flush()  # our lines first, then the workers' (they share stdout)
    procs = [subprocess.Popen(command + ["--label", f"w{i + 1}"], start_new_session=True) for i in range(count)]
    signals: list[int] = []

    def forward(signum: int, frame: object) -> None:
        signals.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if len(signals) == 1 else signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(proc.poll() is None for proc in procs):
            time.sleep(0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for i, proc in enumerate(procs, start=1):
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            log(f"worker w{i} (pid {proc.pid}) was killed by {name}; its trial goes back to the queue once its "
                "heartbeat is stale, and the other workers finish it")
    return bool(signals) or any(proc.returncode == 130 for proc in procs)
