"""CPU affinity for local worker processes: each worker on cores of its own.

Why: XLA's CPU runtime runs independent parts of a program on a thread pool of its own, so a
worker capped at one math thread still keeps more than one core busy. Two such workers on two
cores then fight over both: measured here (AMD EPYC, 2 cores), two fused workers ran a step
1.4x faster each when each was pinned to its own core (benchmarks/results, docs/executors.md: Performance).
"""

from __future__ import annotations

import os

CPUS_ENV = "STUDY_WORKER_CPUS"  # set by `study run --workers N` for each worker it starts: "0" or "2,3"


def worker_cpu_sets(workers: int, threads: int | None) -> list[set[int]] | None:
    """Disjoint CPU sets, `threads` CPUs each, one per local worker; None when they do not fit
    in this process's CPUs (or one worker, or unknown threads): then the OS schedules freely."""
    if workers <= 1 or not threads or not hasattr(os, "sched_getaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    if workers * threads > len(available):
        return None
    return [set(available[i * threads:(i + 1) * threads]) for i in range(workers)]


def format_cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def pin_from_env() -> set[int] | None:
    """Pin this process (and the threads it starts later) to the CPUs in STUDY_WORKER_CPUS, if set."""
    value = os.environ.get(CPUS_ENV, "").strip()
    if not value or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = {int(part) for part in value.split(",") if part.strip()}
    os.sched_setaffinity(0, cpus)
    return cpus
