"""Each process of a `study run --workers 2` sets itself up once (study.execution.bootstrap): it opens the
MLflow store once and chooses the Keras backend at most once. Before the worker spec and its bootstrap,
one run called `configure` four times and `select_backend` three times. A `sitecustomize` on the
processes' path wraps both functions in every process of the real CLI run and writes one line per call."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three processes import TensorFlow

GRID4 = """
name: grid4
epochs: 1
train_subset: 256
seeds: [0]
base: {hidden_layers: 1, units: 8}
factors:
  activation: [sigmoid, relu]
  optimizer: [sgd, adam]
"""

SPY = '''
import os
import study.tracking.store as store
import study.training.backend as backend

def _spy(module, name):
    real = getattr(module, name)
    def wrapper(*args, **kwargs):
        with open(os.environ["STUDY_TEST_CALLS"], "a") as out:
            out.write(f"{os.getpid()} {name}\\n")
        return real(*args, **kwargs)
    setattr(module, name, wrapper)

_spy(store, "configure")
_spy(backend, "select_backend")
'''


def test_each_process_of_a_two_worker_run_configures_tracking_and_the_backend_once(tmp_path: Path, data_dir):
    spy_dir = tmp_path / "spy"
    spy_dir.mkdir()
    (spy_dir / "sitecustomize.py").write_text(SPY)
    calls = tmp_path / "calls.txt"
    spec = write_spec(tmp_path / "grid4.yaml", GRID4)
    result = run_cli("run", str(spec), "--workers", "2", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--data-dir", str(data_dir), "--no-report",
                     cwd=tmp_path, env={"PYTHONPATH": f"{spy_dir}:{ROOT}", "STUDY_TEST_CALLS": str(calls)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "done: completed 4;" in result.stdout
    per_process = Counter(tuple(line.split()) for line in calls.read_text().splitlines())
    pids = {pid for pid, _ in per_process}
    assert len(pids) == 3, per_process  # the launcher and its two workers
    assert all(count == 1 for count in per_process.values()), per_process
    trainers = {pid for pid, name in per_process if name == "select_backend"}
    assert len(trainers) == 2, per_process  # the workers train; the launcher of many workers does not
    assert all((pid, "configure") in per_process for pid in pids), per_process
