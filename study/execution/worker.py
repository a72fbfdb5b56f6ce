"""A worker: takes trials (a group at a time) from the queue, trains them through an executor,
records each as an MLflow child run, tells the queue; stops when no trial waits or runs anywhere.

`study run --workers N` runs N of these (one in-process, or N processes); `study worker`
runs one on any machine that reaches the storage and the tracking server.

Stopping: the first SIGINT/SIGTERM sets a flag; the trials in progress stop at the next
batch, are recorded `interrupted` (MLflow KILLED) and re-queued, and the worker exits.
A second signal stops at once (the trials then come back via their heartbeat).

A store fault (study.core.store_faults: a store unreachable past the retry budget, or a full
disk) stops the worker at once, whichever thread meets it first: it is raised, the trials in
progress go back to the queue if the queue can still be written, else by their heartbeat.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from contextlib import ExitStack, suppress

from study.core.errors import StoreFault
from study.core.names import OPTUNA_STUDY_TAG, STATUS_ATTR, WORKER_ATTR
from study.core.status import TrialStatus
from study.core.text import worker_id
from study.data.splits import SplitCache
from study.execution.bootstrap import bootstrap
from study.execution.signals import StopFlag
from study.execution.sources import TrainingContext, TrialSource, WorkerOptions, WorkerSummary
from study.queue.beacon import Beacon
from study.queue.protocol import Queue
from study.queue.records import WorkerRecord
from study.spec.kinds import data_configs
from study.spec.study_spec import spec_hash
from study.tracking.environment import command_line
from study.tracking.runs import PARENT_RUN_ENV, active_run_id, end_active_run, log_json, log_study_data, parent_run
from study.tracking.store import experiment_id
from study.training.executors.base import ExecutionSettings, Executor
from study.training.executors.registry import EXECUTORS, executor_for

LOG = logging.getLogger(__name__)


def run_worker(spec, queue: Queue, source: TrialSource, options: WorkerOptions,
               stop: StopFlag | None = None) -> WorkerSummary:
    """Take and train trials until none waits or runs anywhere (or a stop is requested).

    `spec` is a StudySpec or a TuneSpec: its name, base config (backend), raw text and steps.
    """
    prefix = f"[{options.label}] " if options.label else ""
    summary = WorkerSummary()
    uri = bootstrap(options, spec, [spec.base])  # before asking whether work is left: the confirm stage reads MLflow
    if source.done(queue):
        LOG.info(prefix + source.idle_message(queue))
        return summary
    own_stop = stop is None
    stop = stop or StopFlag(prefix).install()
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            ctx = _load(spec, queue, source, options, uri, stop, stack, prefix)
            if stop.is_set():  # asked to stop while loading: nothing taken, nothing to give back
                summary.interrupted = True
                return summary
            record = WorkerRecord(worker=ctx.worker, host=socket.gethostname(), pid=os.getpid(), state="idle",
                                  last_seen=time.time())
            beacon = stack.enter_context(Beacon(queue, record, on_fault=lambda fault: stop.event.set()))
            size = options.group_size or EXECUTORS[spec.base.executor].lease_size
            _loop(source, ctx, beacon, summary, prefix, size)
            if beacon.fault is not None:  # the heartbeat met it: the loop stopped at the next batch
                raise beacon.fault
            if summary.interrupted:
                end_active_run("KILLED")
    except KeyboardInterrupt:  # the second signal: stop now, the heartbeat brings the trials back
        summary.interrupted = True
    finally:
        if own_stop:
            stop.restore()
        summary.wall_time_s = time.perf_counter() - started
    return summary


def _load(spec, queue: Queue, source: TrialSource, options: WorkerOptions, uri: str, stop: StopFlag,
          stack: ExitStack, prefix: str) -> TrainingContext:
    exp_id = experiment_id(spec.name, uri)
    splits = SplitCache(options.data_dir, preloaded=options.preloaded)
    data = splits.dataset(spec.base.dataset)  # the base's dataset now: a bad one fails before any trial is taken
    settings = ExecutionSettings(steps_per_execution=options.steps_per_execution or spec.steps_per_execution,
                                 save_model=source.keeps_models, trial_figures=options.trial_figures,
                                 group_size=options.group_size)
    # Everything loaded so far (TF, JAX, MLflow, the data) lives as long as the worker: moved out
    # of the collector's sight, the full collection Keras' clear_session runs before every trial
    # takes milliseconds instead of ~0.4 s (measured on this 2-core machine).
    gc.collect()
    gc.freeze()
    name = worker_id()
    LOG.info(f"{prefix}worker {name} joined study {spec.name} (threads {options.threads or 'default'}; "
        f"data: {data.source})")
    opened: list[bool] = []
    executors: dict[str, Executor] = {}

    def open_parent() -> None:
        """This worker's parent run, unless the caller's is active (`study tune` trains in its own)."""
        if not opened and active_run_id() is None:
            stack.enter_context(parent_run(
                exp_id, spec.name, spec_hash(spec.raw), command_line(),
                {"data_source": data.source, "spec_file": spec.source, OPTUNA_STUDY_TAG: spec.name,
                 "kind": source.kind}, nest_under=os.environ.get(PARENT_RUN_ENV)))
            log_json(spec.raw, "spec.json")
            log_study_data(active_run_id(), splits, data_configs(spec))
            opened.append(True)

    def executor(name: str) -> Executor:
        if name not in executors:
            executors[name] = executor_for(name)
        return executors[name]

    return TrainingContext(spec.name, queue, exp_id, splits, settings, stop, name, open_parent, executor)


def _loop(source: TrialSource, ctx: TrainingContext, beacon: Beacon, summary: WorkerSummary,
          prefix: str, group_size: int) -> None:
    queue, stop = ctx.queue, ctx.stop
    while not stop.is_set():
        queue.fail_stale()
        leases = source.next(queue, group_size)
        if not leases:
            if source.done(queue):
                return
            stop.wait(queue.settings.heartbeat_interval_s)  # others still run trials that may come back
            continue
        interrupted = {STATUS_ATTR: TrialStatus.INTERRUPTED.value, WORKER_ATTR: ctx.worker}
        with beacon.hold(leases):
            try:
                verdicts = source.run(leases, ctx)
            except KeyboardInterrupt:
                if beacon.fault is not None:
                    raise beacon.fault from None
                for lease in leases:
                    if queue.fail(lease, interrupted, requeue=True):
                        summary.counts["interrupted"] = summary.counts.get("interrupted", 0) + 1
                summary.interrupted = True
                LOG.info(f"{prefix}trial(s) {', '.join(str(lease.number) for lease in leases)} interrupted and re-queued")
                return
            except BaseException:
                for lease in leases:
                    with suppress(StoreFault):  # a queue that failed: the trials come back by heartbeat
                        queue.fail(lease, interrupted, requeue=True)
                raise
        for verdict in verdicts:
            summary.counts[verdict.outcome] = summary.counts.get(verdict.outcome, 0) + 1
        beacon.update(done=beacon.record.done + len(leases))
        for line in source.describe(queue, list(zip(leases, verdicts))):
            LOG.info(prefix + line)
    # Stopped between trials (the signal came after the last batch of a group, or while idle):
    # nothing is half-done, but unless the study happens to be finished the command must say interrupted.
    summary.interrupted = not source.done(queue)
