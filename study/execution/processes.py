"""Local worker processes: `study run --workers N` starts N `python -m study worker` processes.

Each is exactly what a worker on another machine runs, on the same queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from study.core.affinity import CPUS_ENV, format_cpus, worker_cpu_sets
from study.execution.signals import say
from study.execution.sources import WorkerOptions
from study.queue.storage import STORAGE_ENV
from study.tracking.runs import PARENT_RUN_ENV
from study.tracking.store import TRACKING_ENV


def threads_per_worker(workers: int) -> int | None:
    """Split the cores between local workers; one worker keeps the library's default.

    Measured here: two one-thread TF processes gave 1.75x the throughput of one,
    two default-threaded ones only 1.27x (they fight over the same cores).
    """
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def worker_command(spec_source: str, options: WorkerOptions, overrides: dict[str, str] | None = None) -> list[str]:
    """The `python -m study worker` command line with these options; the stores come in its
    environment (`worker_env`), so no password shows in `ps` or in the worker's `command` tag."""
    command = [sys.executable, "-m", "study", "worker", spec_source]
    if options.data_dir:
        command += ["--data-dir", str(options.data_dir)]
    for name, value in (overrides or {}).items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    if options.steps_per_execution:
        command += ["--steps-per-execution", str(options.steps_per_execution)]
    if options.group_size:
        command += ["--group-size", str(options.group_size)]
    if options.trial_figures:
        command += ["--trial-figures"]
    if options.threads:
        command += ["--threads", str(options.threads)]
    return command


def worker_env(storage_url: str, tracking_uri: str, parent_run_id: str | None = None) -> dict[str, str]:
    """The environment of a local worker: this process's, with the queue and the MLflow store set
    (the variables `study worker` reads when --storage / --tracking-uri are not given)."""
    env = {**os.environ, STORAGE_ENV: storage_url}
    if tracking_uri:
        env[TRACKING_ENV] = tracking_uri
    if parent_run_id:
        env[PARENT_RUN_ENV] = parent_run_id
    return env


def spawn_workers(spec_source: str, storage_url: str, tracking_uri: str, count: int, options: WorkerOptions,
                  overrides: dict[str, str] | None = None, log: Callable[[str], None] = say,
                  parent_run_id: str | None = None) -> bool:
    """Run `count` `python -m study worker` processes on this queue; return True if interrupted.

    Each runs in its own session, so a terminal's Ctrl-C reaches only this process,
    which passes it on exactly once (a second Ctrl-C is passed on as a second signal).
    With `parent_run_id`, each worker's MLflow run nests under that run (the invocation's).
    """
    command = worker_command(spec_source, options, overrides)
    env = worker_env(storage_url, tracking_uri, parent_run_id)
    sys.stdout.flush()  # our lines first, then the workers' (they share stdout)
    cpu_sets = worker_cpu_sets(count, options.threads)
    if cpu_sets:
        log("each worker on its own CPU(s): " + "; ".join(f"w{i + 1} {format_cpus(c)}" for i, c in enumerate(cpu_sets)))
    procs = [subprocess.Popen(command + ["--label", f"w{i + 1}"], start_new_session=True,
                              env={**env, CPUS_ENV: format_cpus(cpu_sets[i])} if cpu_sets else env)
             for i in range(count)]
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
