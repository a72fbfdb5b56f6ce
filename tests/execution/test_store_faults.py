"""A study rides out a store that goes away for a while and stops cleanly on a full disk (study.core.store_faults).

Through the real CLI with real stores, as an operations team would break them: PostgreSQL
(queue and MLflow) stopped with `pg_ctl stop -m immediate` for 20 s, an MLflow tracking
server stopped for 20 s, and a small tmpfs holding the SQLite stores filled up mid-study.
Each time every trial ends up recorded exactly once, in MLflow and in the queue.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from study.queue.records import COMPLETED
from study.queue.trial_queue import TrialQueue
from tests.conftest import ROOT, write_spec
from tests.execution.test_workers import GRID16, assert_each_trial_once

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 20


def start(args: list[str], cwd: Path, logs: Path) -> tuple[subprocess.Popen, Path, Path]:
    """`python -m study ARGS` in the background; stdout and stderr to files in `logs` (not on a disk we fill)."""
    stamp = time.monotonic_ns()
    out, err = logs / f"out-{stamp}.log", logs / f"err-{stamp}.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "study", *args], cwd=cwd, stdout=stdout, stderr=stderr,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    return proc, out, err


def wait_until_done(proc: subprocess.Popen, storage: str, study: str, trials: int, out: Path,
                    timeout_s: float = 600) -> None:
    """Until `trials` trials of the queue are complete (the study must still be running then)."""
    deadline, queue = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the study ended before {trials} trials were done:\n{out.read_text()[-3000:]}"
        queue = queue or TrialQueue.open(storage, study, readonly=True)
        if queue is not None and len(queue.trials((COMPLETED,))) >= trials:
            queue.storage.engine.dispose()  # no connection of ours left open when the store goes away
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {trials} trials done after {timeout_s} s")


def finish(proc: subprocess.Popen, out: Path, err: Path, timeout_s: float = 600) -> tuple[str, str]:
    try:
        proc.wait(timeout=timeout_s)
    finally:
        proc.kill()
    return out.read_text(), err.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- PostgreSQL restarted


def test_a_postgresql_restart_mid_study_is_ridden_out(tmp_path, data_dir, own_postgres):
    from tests.postgres import create_database

    spec = write_spec(tmp_path / "grid16.yaml", GRID16)
    tracking, storage = create_database(own_postgres.url, "mlflow"), create_database(own_postgres.url, "optuna")
    proc, out, err = start(["run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
                            "--data-dir", str(data_dir), "--no-report"], tmp_path, tmp_path)
    try:
        wait_until_done(proc, storage, "grid16", 5, out)
        own_postgres.halt()
        time.sleep(OUTAGE_S)
        own_postgres.start()
    finally:
        stdout, stderr = finish(proc, out, err)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "is unreachable" in stdout and "is reachable again" in stdout, "the study never met the outage"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert_each_trial_once(spec, tracking, storage)


def test_a_postgresql_down_past_the_retry_budget_stops_with_one_line_and_a_rerun_finishes(tmp_path, data_dir,
                                                                                          own_postgres):
    from tests.execution.test_redaction import PASSWORD, with_password
    from tests.postgres import create_database

    spec = write_spec(tmp_path / "grid8.yaml", GRID16.replace("name: grid16", "name: grid8").replace(
        "seeds: [0, 1]", "seeds: [0]"))  # a rerun after the stop is what this adds: a shorter grid does
    tracking = with_password(create_database(own_postgres.url, "mlflow"))
    storage = with_password(create_database(own_postgres.url, "optuna"))
    command = ["run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
               "--data-dir", str(data_dir), "--no-report", "--heartbeat", "1", "--grace", "4"]
    proc, out, err = start([*command, "--store-retry-seconds", "5"], tmp_path, tmp_path)
    try:
        wait_until_done(proc, storage, "grid8", 2, out)
        own_postgres.halt()
        halted = time.monotonic()
        proc.wait(timeout=120)
        waited = time.monotonic() - halted
    finally:
        stdout, stderr = finish(proc, out, err)
    assert proc.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert waited < 60, f"it gave up after {waited:.0f} s, not about 5 s"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-5000:]
    assert "unreachable for" in lines[0] and "run the same command to resume" in lines[0], lines[0]
    assert "postgres:***@127.0.0.1" in lines[0] and PASSWORD not in stdout + stderr
    assert "is unreachable" in stdout, "the outage was announced as it began"

    own_postgres.start()
    proc, out, err = start(command, tmp_path, tmp_path)
    stdout, stderr = finish(proc, out, err)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert_each_trial_once(spec, tracking, storage)


# --------------------------------------------------------------------------- MLflow tracking server restarted


class TrackingServer:
    """`mlflow server` on a free port with a SQLite backend, in its own process group (it forks workers)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120) -> None:
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the tracking server did not answer in {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: the server and its workers, at once
            self.proc.wait(timeout=30)


def test_a_tracking_server_restart_mid_study_is_ridden_out(tmp_path, data_dir):
    (tmp_path / "server").mkdir()
    server = TrackingServer(tmp_path / "server")
    server.start()
    spec = write_spec(tmp_path / "grid16.yaml", GRID16)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    try:
        proc, out, err = start(["run", str(spec), "--workers", "2", "--tracking-uri", server.url,
                                "--storage", storage, "--data-dir", str(data_dir), "--no-report"], tmp_path, tmp_path)
        try:
            wait_until_done(proc, storage, "grid16", 5, out)
            server.stop()
            time.sleep(OUTAGE_S)
            server.start()
        finally:
            stdout, stderr = finish(proc, out, err)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
        assert "is unreachable" in stdout and "is reachable again" in stdout, "the study never met the outage"
        assert "Traceback" not in stderr, stderr[-3000:]
        assert_each_trial_once(spec, server.url, storage)
    finally:
        server.stop()


# --------------------------------------------------------------------------- a full disk


@pytest.fixture()
def small_disk(tmp_path):
    """A 64 MB tmpfs (mounting needs root, as in CI); the test fills it with a file of its own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must be able to mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); CI runs this as root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it (deleting it frees the space)."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
        try:
            while True:  # the last few KB too
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_disk_stops_the_study_with_one_line_and_a_rerun_finishes_it(tmp_path, data_dir, small_disk):
    spec = write_spec(tmp_path / "grid16.yaml", GRID16)
    tracking, storage = f"sqlite:///{small_disk / 'mlflow.db'}", f"sqlite:///{small_disk / 'optuna.db'}"
    command = ["run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
               "--data-dir", str(data_dir), "--no-report", "--heartbeat", "1", "--grace", "4"]
    proc, out, err = start(command, small_disk, tmp_path)  # artifacts (./mlartifacts) on the small disk too
    try:
        wait_until_done(proc, storage, "grid16", 5, out)
        filler = fill(small_disk)
        started = time.monotonic()
    finally:
        stdout, stderr = finish(proc, out, err)
    assert proc.returncode == 1, stdout[-3000:] + stderr[-3000:]
    assert time.monotonic() - started < 60, "the workers did not stop at once"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-5000:]
    assert "no space left" in lines[0] and "free space, then run the same command" in lines[0], lines[0]
    assert str(small_disk) in lines[0], "it names the store"
    assert "done:" not in stdout

    filler.unlink()
    proc, out, err = start(command, small_disk, tmp_path)
    stdout, stderr = finish(proc, out, err)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert_each_trial_once(spec, tracking, storage)
