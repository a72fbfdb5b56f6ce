"""The study's workers as Ray actors (`study run|tune SPEC --ray [ADDRESS]`).

Each actor runs the same worker loop (study.execution.worker.run_worker) against the same
queue and MLflow store as a local worker or `study worker` on another machine; Ray only
places the actors (CPUs, GPUs per worker) and restarts dead ones (`max_restarts`).
Exactly-once stays the queue's job: a dead actor's trials go back to the queue when their
heartbeat is stale, exactly as with any other worker, and a restarted actor simply joins
the queue again.

Each actor gets a worker spec (study.execution.worker_spec) as JSON, the spec's content inside,
never only its path: the file need not exist on the other nodes. It sets its process up with the
same bootstrap as every worker (study.execution.bootstrap). Each node needs the project installed (the same
code: a worker refuses a trial whose config hashes differently) and finds MNIST itself
(`--data-dir` if that folder exists there, else STUDY_DATA_DIR, the cache, the web).

This command (the driver) prints the workers' lines as they come (each actor keeps them
until asked; they are the same study-wide `[i/N] ... | ETA` lines local workers print)
and passes Ctrl-C on: the first asks every actor to stop (the trials in progress are
recorded interrupted and re-queued), a second kills them (their trials come back by
heartbeat). Each actor also prints its lines to its own Ray log file.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from study.core.errors import InputError, StoreFault
from study.core.logs import LineBuffer, StdoutHandler, send_lines_to
from study.core.names import WORKER_TAG
from study.core.quiet import is_verbose, quiet_start
from study.core.store_faults import retry_budget_s
from study.core.text import format_duration, worker_id
from study.execution.ray_cluster import NAMESPACE, RayCluster
from study.execution.bootstrap import read_spec
from study.execution.arm_stage import source_for
from study.execution.signals import StopFlag
from study.execution.sources import WorkerOptions, WorkerSummary
from study.execution.tune_source import TuneSource
from study.execution.worker import run_worker
from study.execution.worker_spec import WorkerSpec
from study.queue.storage import QueueSettings
from study.queue.trial_queue import TrialQueue
from study.spec.tune_spec import TuneSpec
from study.tracking.reading import find_experiment
from study.tracking.runs import reap_runs
from study.tuning.optuna_setup import open_queue

LOG = logging.getLogger(__name__)
POLL_S = 0.5  # how often the driver collects the workers' lines and looks for finished or dead ones
LOG_HINT = "/tmp/ray/session_latest/logs/worker-*.out on each node"


class StudyWorker:
    """One worker process as a Ray actor (made remote in `run_on_ray`; Ray may be absent at import).

    Threaded (max_concurrency > 1): `work` trains in one thread while `lines`, `stop` and
    `info` answer in others, so the driver can collect progress and stop a busy worker.
    """

    def __init__(self, label: str) -> None:
        quiet_start()  # before TensorFlow or JAX is imported in this process
        self.label = label
        self._buffer = LineBuffer()  # what the driver relays; stdout is this worker's Ray log file
        send_lines_to(StdoutHandler(), self._buffer)
        self._working = threading.Lock()  # one worker loop per process, even if a call is resubmitted
        self.stop_flag = StopFlag()  # never installed: `stop()` sets it, not a signal

    def info(self) -> dict[str, Any]:
        """Who this actor's process is and where Ray placed it (printed once per process by the driver)."""
        import ray

        return {"worker": worker_id(), "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "node_ip": ray.util.get_node_ip_address()}

    def lines(self) -> list[str]:
        return self._buffer.take()

    def stop(self) -> None:
        if not self.stop_flag.is_set():
            self.stop_flag.event.set()
            LOG.info(f"[{self.label}] stopping: the trials in progress are recorded as interrupted and re-queued")

    def work(self, worker_json: str) -> WorkerSummary:
        """Join the worker spec's queue and train until no trial waits or runs (or `stop`)."""
        with self._working:
            return self._work(WorkerSpec.from_json(worker_json))

    def _work(self, worker: WorkerSpec) -> WorkerSummary:
        if worker.command:
            sys.argv = list(worker.command)  # the MLflow parent run records the command that started this worker
        if worker.data_dir and not Path(worker.data_dir).is_dir():
            LOG.info(f"[{self.label}] --data-dir {worker.data_dir} does not exist on this node; looking for the "
                      "data in STUDY_DATA_DIR, the cache, then the web (every array is checksum-verified)")
            worker = replace(worker, data_dir=None)
        spec = read_spec(worker)
        if isinstance(spec, TuneSpec):
            queue, source = open_queue(spec, worker.storage_url), TuneSource(spec)
        else:  # the queue adopts the study's stored settings
            queue, source = TrialQueue.open(worker.storage_url, spec.name, QueueSettings()), source_for(spec)
        options = WorkerOptions(**vars(worker))
        return run_worker(spec, queue, source, options, stop=self.stop_flag)


@dataclass
class Slot:
    """One actor as the driver sees it: its pending calls, who it is, how often it died."""

    label: str
    actor: Any
    work: Any = None  # ObjectRef of the running `work` call (None once finished)
    info: Any = None  # ObjectRef of `info` for the current process
    lines: Any = None  # ObjectRef of an outstanding `lines` call
    worker: str | None = None  # host:pid of the current process
    restarts: int = 0
    dead: list[str] = field(default_factory=list)  # host:pid of its processes that died
    summary: WorkerSummary | None = None
    error: BaseException | None = None


class Driver:
    """Starts the actors, relays their lines, restarts their work after Ray restarts them, stops them."""

    def __init__(self, cluster: RayCluster, spec: Any, queue: TrialQueue, options: WorkerOptions) -> None:
        self.ray = cluster.connect()
        self.plan = cluster.plan
        self.cluster = cluster
        self.spec, self.queue = spec, queue
        # What travels to each actor: the spec's content, with the base's backend and executor as the command
        # line may have set them, the stores, the retry budget and the command this driver runs.
        self.worker = replace(options.worker_spec(), spec=spec.source, spec_content=spec.raw,
                              overrides={"backend": spec.base.backend, "executor": spec.base.executor},
                              storage_url=queue.url, threads=options.threads or self.plan.threads,
                              store_retry_s=retry_budget_s(), verbose=is_verbose(), command=tuple(sys.argv))
        self.signals: list[int] = []
        self.slots: list[Slot] = []

    def start(self, count: int) -> None:
        remote = self.ray.remote(StudyWorker)
        tag = f"{self.spec.name}:{os.getpid()}:{time.time_ns() % 10**6}"
        gpus = f", {self.plan.gpus:g} GPU(s)" if self.plan.gpus else ""
        LOG.info(f"starting {count} Ray worker(s) ({self.plan.cpus:g} CPU(s){gpus} and {self.worker.threads} "
                 f"thread(s) each; Ray restarts a dead one up to {self.plan.max_restarts} time(s); their logs: "
                 f"{LOG_HINT})")
        for i in range(count):
            label = f"w{i + 1}"
            actor = remote.options(name=f"{tag}:{label}", namespace=NAMESPACE, num_cpus=self.plan.cpus,
                                   num_gpus=self.plan.gpus, max_restarts=self.plan.max_restarts,
                                   max_concurrency=4).remote(label)
            slot = Slot(label, actor)
            self.slots.append(slot)
            self._submit(slot)

    def _submit(self, slot: Slot) -> None:
        slot.work = slot.actor.work.remote(replace(self.worker, label=slot.label).to_json())
        slot.info = slot.actor.info.remote()
        slot.worker = None

    def run(self) -> bool:
        """Relay lines until every actor's work returned or it died for good; True if interrupted."""
        previous = {s: signal.signal(s, lambda signum, frame: self.signals.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
        acted = 0
        try:
            while any(slot.work is not None for slot in self.slots):
                refs = [slot.work for slot in self.slots if slot.work is not None]
                ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=POLL_S)
                if len(self.signals) > acted:
                    acted = len(self.signals)
                    self._stop(at_once=acted > 1)
                self._relay()
                for slot in self.slots:
                    if slot.work is not None and slot.work in ready:
                        self._finished(slot)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._close()
        if not self.signals and all(slot.summary is None and slot.error is None for slot in self.slots):
            LOG.info("every Ray worker is gone before the study's end; its trials stay in the queue: run the same "
                     "command again to finish it")
        errors = [slot.error for slot in self.slots if slot.error is not None]
        faults = [error for error in errors if isinstance(error, StoreFault)]
        if faults:
            raise faults[0]  # a store failed (study.core.store_faults): one line, how to resume
        if errors and len(errors) == len(self.slots) and isinstance(errors[0], InputError):
            raise errors[0]  # every worker hit the same bad input (e.g. no MNIST on the nodes): exit 2
        return bool(self.signals) or any(s.summary is not None and s.summary.interrupted for s in self.slots)

    def _relay(self) -> None:
        """Print the lines each actor has gathered; learn who each actor's process is."""
        for slot in self.slots:
            if slot.info is not None and self.ray.wait([slot.info], timeout=0)[0]:
                try:
                    info = self.ray.get(slot.info)
                    slot.worker = info["worker"]
                    LOG.info(f"Ray worker {slot.label} is {slot.worker} on node {info['node_ip']} "
                             f"(id {info['node_id'][:12]})")
                except self.ray.exceptions.RayError:
                    pass
                slot.info = None
            if slot.work is None:
                continue
            if slot.lines is None:
                slot.lines = slot.actor.lines.remote()
            elif self.ray.wait([slot.lines], timeout=0)[0]:
                self._print(slot)

    def _print(self, slot: Slot, timeout: float | None = None) -> None:
        try:
            for line in self.ray.get(slot.lines, timeout=timeout):
                LOG.info(line)
        except self.ray.exceptions.RayError:
            pass  # the actor died; its lines are in its Ray log file
        slot.lines = None

    def _finished(self, slot: Slot) -> None:
        exceptions = self.ray.exceptions
        try:
            slot.summary = self.ray.get(slot.work)
        except exceptions.RayActorError as exc:  # the process died (killed, crashed, node lost)
            slot.lines = None
            who = slot.worker or "its process"
            if slot.worker:
                slot.dead.append(slot.worker)
            reason = _reason(exc)
            if isinstance(exc, exceptions.ActorDiedError) or self.signals:
                LOG.info(f"Ray worker {slot.label} ({who}) died and is not restarted ({reason}); its trials go back "
                         "to the queue once their heartbeat is stale, and the other workers finish them")
                slot.work = None
                return
            slot.restarts += 1
            LOG.info(f"Ray worker {slot.label} ({who}) died ({reason}); Ray restarts it (restart {slot.restarts} of "
                     f"{self.plan.max_restarts}) and it joins the queue again; its trials go back to the queue once "
                     "their heartbeat is stale")
            self._submit(slot)
            return
        except exceptions.RayTaskError as exc:  # the worker loop raised: report it, the others go on
            slot.error = exc.cause if isinstance(exc.cause, BaseException) else exc
            if isinstance(slot.error, StoreFault):  # except a store fault: the others would meet it too
                self._stop(at_once=True)
        for _ in range(2):  # an outstanding call may predate the last lines: ask once more after it
            if slot.lines is None:
                slot.lines = slot.actor.lines.remote()
            self._print(slot, timeout=30)
        if slot.error is not None:
            message = str(slot.error).splitlines()[0] if str(slot.error) else ""
            LOG.info(f"Ray worker {slot.label} ({slot.worker or '?'}) stopped with an error: "
                     f"{type(slot.error).__name__}: {message}")
        if slot.summary is not None and slot.summary.counts:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(slot.summary.counts.items()))
            LOG.info(f"[{slot.label}] worker done: {counts}; {format_duration(slot.summary.wall_time_s)}")
        slot.work = None
        self.ray.kill(slot.actor, no_restart=True)  # done: free its CPUs (and GPUs) for the rest

    def _stop(self, at_once: bool) -> None:
        """Ctrl-C or SIGTERM on this command: ask every actor to stop; a second time, kill them."""
        alive = [slot for slot in self.slots if slot.work is not None]
        if not at_once:
            LOG.info("stopping the Ray workers; the trials in progress are recorded as interrupted and re-queued "
                     "(signal again to stop at once)")
            for slot in alive:
                slot.actor.stop.remote()
            return
        LOG.info("stopping the Ray workers at once; their trials go back to the queue by heartbeat")
        for slot in alive:
            self.ray.kill(slot.actor, no_restart=True)

    def _close(self) -> None:
        """Kill what is left; close the MLflow runs of dead actors' processes (they cannot close them)."""
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        dead = [worker for slot in self.slots for worker in slot.dead]
        exp_id = find_experiment(self.spec.name) if dead else None
        for worker in dead if exp_id is not None else []:
            reap_runs(exp_id, {WORKER_TAG: worker},
                      "its Ray worker died (killed, crashed or its node was lost); re-queued")


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_on_ray(cluster: RayCluster, spec: Any, queue: TrialQueue, options: WorkerOptions, limit: int) -> bool:
    """Train with Ray actors (the plan's number, or as many as fit, at most `limit`); True if interrupted.
    Each actor reads the spec and builds its trial source itself, as `study worker` does."""
    driver = Driver(cluster, spec, queue, options)
    driver.start(cluster.worker_count(limit))
    return driver.run()
