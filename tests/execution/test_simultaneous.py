"""Commands started at the same moment on fresh stores: a user starting `make ablate` in one terminal and
`make worker` in two others. All exit 0 and every trial is recorded once, on SQLite and on PostgreSQL.

Before the schema lock (study.core.store_lock) the second process died in MLflow's alembic migration
("Online migration expected to match one row ...") or in Optuna's `create_all` ("table ... already exists").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import write_spec
from tests.execution.test_workers import assert_each_trial_once, start_cli

pytestmark = pytest.mark.integration

GRID4 = """
name: together
epochs: 1
train_subset: 200
seeds: [0]
steps_per_execution: 8
base: {hidden_layers: 1, units: 16}
factors:
  activation: [sigmoid, relu]
  optimizer: [sgd, adam]
"""
COMMANDS = ("run", "worker", "worker")


def start_together(spec: Path, tracking: str, storage: str, data_dir: Path, cwd: Path) -> None:
    """Start `run` and two `worker`s at the same moment, wait for all three, check each exited 0."""
    common = ["--tracking-uri", tracking, "--storage", storage, "--data-dir", str(data_dir)]
    started = [start_cli(command, str(spec), *common, *(["--no-report"] if command == "run" else []), cwd=cwd)
               for command in COMMANDS]
    deadline = time.monotonic() + 600
    try:
        for proc, _ in started:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        for proc, _ in started:
            proc.kill()
    for (proc, log), command in zip(started, COMMANDS):
        assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def test_run_and_two_workers_started_together_on_fresh_sqlite_stores(tmp_path, data_dir):
    spec = write_spec(tmp_path / "together.yaml", GRID4)
    tracking, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    start_together(spec, tracking, storage, data_dir, tmp_path)
    assert_each_trial_once(spec, tracking, storage)


def test_run_and_two_workers_started_together_on_fresh_postgresql_stores(tmp_path, data_dir, postgres_db):
    spec = write_spec(tmp_path / "together.yaml", GRID4)
    tracking, storage = postgres_db("mlflow"), postgres_db("optuna")
    start_together(spec, tracking, storage, data_dir, tmp_path)
    assert_each_trial_once(spec, tracking, storage)
