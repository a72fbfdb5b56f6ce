"""Local worker processes: `study run --workers N` starts N `python -m study worker` processes.

Each is exactly what a worker on another machine runs, on the same queue. A worker that
meets a store fault (study.core.store_faults) hands it to this command on a pipe of its own
(FAULT_FD_ENV) instead of printing it: the command stops the other workers at once and
reports the fault in one line, not once per worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from study.core.affinity import CPUS_ENV, format_cpus, worker_cpu_sets
from study.core.errors import StoreFault, StoreFull, StoreUnavailable
from study.core.store_faults import give_up
from study.execution.worker_spec import WorkerSpec

FAULT_FD_ENV = "STUDY_FAULT_FD"  # set for the workers `study run --workers N` starts: where a store fault goes
FAULTS = {cls.__name__: cls for cls in (StoreFault, StoreUnavailable, StoreFull)}
LOG = logging.getLogger(__name__)


def threads_per_worker(workers: int) -> int | None:
    """Split the cores between local workers; one worker keeps the library's default.

    Measured here: two one-thread TF processes gave 1.75x the throughput of one,
    two default-threaded ones only 1.27x (they fight over the same cores).
    """
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def spawn_workers(worker: WorkerSpec, count: int) -> bool:
    """Run `count` `python -m study worker` processes for `worker` (labelled w1, w2, ...); True if interrupted.

    Each runs in its own session, so a terminal's Ctrl-C reaches only this process,
    which passes it on exactly once (a second Ctrl-C is passed on as a second signal).
    With `worker.parent_run_id`, each worker's MLflow run nests under that run (the invocation's).
    """
    env = worker.env()
    sys.stdout.flush()  # our lines first, then the workers' (they share stdout)
    cpu_sets = worker_cpu_sets(count, worker.threads)
    if cpu_sets:
        LOG.info("each worker on its own CPU(s): " + "; ".join(f"w{i + 1} {format_cpus(c)}" for i, c in enumerate(cpu_sets)))
    pipes = [os.pipe() for _ in range(count)]
    procs = []
    for i, (_, write) in enumerate(pipes):
        extra = {FAULT_FD_ENV: str(write), **({CPUS_ENV: format_cpus(cpu_sets[i])} if cpu_sets else {})}
        procs.append(subprocess.Popen(replace(worker, label=f"w{i + 1}").argv(), start_new_session=True,
                                      env={**env, **extra}, pass_fds=(write,)))
        os.close(write)
    signals: list[int] = []
    faults: list[StoreFault] = []

    def forward(signum: int, frame: object) -> None:
        signals.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if len(signals) == 1 else signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(proc.poll() is None for proc in procs):
            time.sleep(0.2)
            for proc, (read, _) in zip(procs, pipes):
                if not faults and proc.poll() is not None:
                    faults += _read_fault(read)
                    if faults:  # the others would meet it too: stop them now, their trials come back by heartbeat
                        for other in procs:
                            if other.poll() is None:
                                other.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for read, _ in pipes:
        faults += _read_fault(read)
        os.close(read)
    if faults:
        give_up()  # this process's clean-up makes one try per store, not another wait
        raise faults[0]
    for i, proc in enumerate(procs, start=1):
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            LOG.info(f"worker w{i} (pid {proc.pid}) was killed by {name}; its trial goes back to the queue once its "
                "heartbeat is stale, and the other workers finish it")
    return bool(signals) or any(proc.returncode == 130 for proc in procs)


def send_fault(fault: StoreFault) -> bool:
    """In a worker `study run --workers N` started: hand `fault` to that command (True), else False."""
    fd = os.environ.get(FAULT_FD_ENV)
    if not fd:
        return False
    message = json.dumps({"kind": type(fault).__name__, "what": fault.what, "url": fault.url, "detail": fault.detail})
    try:
        os.write(int(fd), (message + "\n").encode())
    except (OSError, ValueError):
        return False
    return True


def _read_fault(read: int) -> list[StoreFault]:
    """The fault a finished worker handed over on its pipe, if any (its end is closed: this never blocks)."""
    os.set_blocking(read, False)
    try:
        data = os.read(read, 65536)
    except (BlockingIOError, OSError):
        return []
    faults = []
    for line in data.decode(errors="replace").splitlines():
        try:
            fields = json.loads(line)
            faults.append(FAULTS[fields.pop("kind")](**fields))
        except (ValueError, KeyError, TypeError):
            continue
    return faults
