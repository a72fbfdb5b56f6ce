"""Every registered executor passes the conformance suite (tests/executors/conformance.py), per backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from study.training.executors.registry import EXECUTORS
from tests.conftest import ROOT

CASES = [(name, backend) for name in EXECUTORS for backend in ("tensorflow", "jax")
         if not (name == "fused" and backend != "jax") and (EXECUTORS[name].keras or backend == "tensorflow")]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("executor, backend", CASES)
def test_executor_passes_the_conformance_suite(executor, backend, data_dir):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "executors" / "conformance.py"), executor, backend,
                          str(data_dir)], capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr[-3000:]
    outcome = json.loads(lines[-1])
    failed = {check: message for check, message in outcome.items() if message != "ok"
              and not (message.startswith("n/a: ") and not EXECUTORS[executor].keras)}
    assert not failed, "\n\n".join(f"{check}: {message}" for check, message in failed.items())
    assert out.returncode == 0
