"""`make ui`'s MLflow server, started the same way, serves a tiny study's runs over REST."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.conftest import ROOT, run_cli, write_spec
from tests.ui.browser import wait_for_http

SPEC = """
name: ui_tiny
epochs: 1
validation: holdout
train_subset: 200
seeds: [0]
factors:
  dropout: [0.0, 0.2]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.integration
def test_make_ui_serves_the_study(tmp_path, data_dir):
    spec = write_spec(tmp_path / "ui.yaml", SPEC)
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    done = run_cli("run", str(spec), "--data-dir", str(data_dir), "--tracking-uri", uri, "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    port = free_port()
    # `make ui` runs `python -m study ui`; start it the same way, in its own process group.
    recipe = subprocess.run(["make", "-s", "-n", "ui", f"TRACKING_URI={uri}", f"PORT={port}"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert f"-m study ui --tracking-uri {uri} --host 127.0.0.1 --port {port}" in recipe
    server = subprocess.Popen([sys.executable, "-m", "study", "ui", "--tracking-uri", uri, "--port", str(port)],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui_tiny",
                                    timeout=10) as response:
            experiment = json.load(response)["experiment"]
        runs = post(f"{base}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": "tags.study_role = 'trial'"})["runs"]
        assert len(runs) == 2
        for run in runs:
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert params["dropout"] in {"0.0", "0.2"} and params["train_subset"] == "200"
            assert 0 < metrics["final_val_accuracy"] <= 1
        assert sorted(p["value"] for r in runs for p in r["data"]["params"] if p["key"] == "dropout") == ["0.0", "0.2"]
        history = json.load(urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/metrics/get-history?run_id={runs[0]['info']['run_id']}&metric_key=val_loss",
            timeout=10))["metrics"]
        assert [m["step"] for m in history] == [0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)



MARK = "STUDY_UI_TEST_TREE"  # inherited by every process the UI starts, orphans included


def _tree(mark: str) -> dict[psutil.Process, str]:
    """Every live process (not a zombie) whose environment carries `mark`, with its command line."""
    found = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc] = f"{proc.pid} (parent {proc.ppid()}): " + " ".join(proc.cmdline())[:100]
        except psutil.Error:
            continue
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_the_ui_and_every_process_it_started(tmp_path):
    """A service manager stops `study ui` with SIGTERM to its main process only: the MLflow server,
    its uvicorn workers, its job runner and the job consumers must all end with it, none left to init.
    The signal comes as MLflow's job runner starts, before it has started its consumers (`mlflow ui`
    alone then left the consumers running and itself waiting on them)."""
    port = free_port()
    mark = f"{os.getpid()}-{port}"
    ui = subprocess.Popen([sys.executable, "-m", "study", "ui", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                           "--port", str(port)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), MARK: mark},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # in our group, as under a manager
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", lambda: ui.poll() is None)
        deadline = time.time() + 30  # MLflow versions without job execution start no runner
        while time.time() < deadline and not any("mlflow.server.jobs" in cmd for cmd in _tree(mark).values()):
            time.sleep(0.2)
        assert len(_tree(mark)) >= 3, "study ui, the MLflow server and its uvicorn process"
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
        deadline = time.time() + 15
        while time.time() < deadline and _tree(mark):
            time.sleep(0.5)
        survivors = list(_tree(mark).values())
        assert not survivors, survivors
    finally:
        for proc in _tree(mark):
            try:
                proc.kill()
            except psutil.Error:
                pass
