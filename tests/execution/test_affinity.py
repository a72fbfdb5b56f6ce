"""Local workers on CPUs of their own (study.core.affinity): the sets, and a worker pinning itself."""

from __future__ import annotations

import os
import subprocess
import sys

from study.core.affinity import CPUS_ENV, worker_cpu_sets


def test_workers_get_disjoint_cpu_sets_only_when_they_fit(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert worker_cpu_sets(2, 1) == [{0}, {1}]
    assert worker_cpu_sets(2, 2) == [{0, 1}, {2, 3}]
    assert worker_cpu_sets(3, 2) is None, "6 CPUs asked of 4: the OS schedules them"
    assert worker_cpu_sets(1, 1) is None and worker_cpu_sets(2, None) is None


def test_a_worker_pins_itself_to_the_cpus_it_is_given():
    cpu = min(os.sched_getaffinity(0))
    code = "from study.core.affinity import pin_from_env; import os; pin_from_env(); print(sorted(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, CPUS_ENV: str(cpu)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"[{cpu}]"
