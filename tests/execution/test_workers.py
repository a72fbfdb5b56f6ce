"""Many workers on one queue, through the real CLI, real Keras training, real MLflow and
Optuna stores (SQLite files and a PostgreSQL server): every trial exactly once, even
when a worker is killed or interrupted mid-trial.

Tiny data (256 images, 1 epoch) keeps a 16-trial grid to seconds of training; most of
the time is process start-up (TensorFlow import), so each test starts few processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from study.core.names import KEY_ATTR, RUN_ID_ATTR, STATUS_ATTR, WORKER_ATTR
from study.queue.records import COMPLETED, FAILED, RUNNING, WAITING
from study.queue.trial_queue import TrialQueue
from study.spec.study_spec import load_spec
from tests.conftest import ROOT, run_cli, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # several processes train real grids

GRID16 = """
name: grid16
epochs: 1
train_subset: 256
seeds: [0, 1]
steps_per_execution: 8
base: {hidden_layers: 2, units: 16}
factors:
  activation: [sigmoid, relu]
  init: [xavier, he]
  optimizer: [sgd, adam]
"""

# Longer trials (2 epochs, more data): the test stops a worker in its first epoch.
GRID6 = """
name: grid6
epochs: 2
train_subset: 1000
seeds: [0, 1, 2]
steps_per_execution: 8
base: {hidden_layers: 2, units: 16}
factors:
  optimizer: [sgd, adam]
"""


def stores(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"


def trial_runs(tracking_uri: str, study: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string="tags.study_role = 'trial'",
                              max_results=1000)


def assert_each_trial_once(spec_path: Path, tracking_uri: str, storage_url: str) -> tuple[list, TrialQueue]:
    """n completed Optuna trials and n finished MLflow child runs, one per key of the spec, linked."""
    spec = load_spec(spec_path)
    expected = {t.key for t in spec.unique_trials()}
    runs = trial_runs(tracking_uri, spec.name)
    finished = Counter(r.data.tags["trial_key"] for r in runs if r.info.status == "FINISHED")
    assert set(finished) == expected, f"{len(finished)} keys finished in MLflow, {len(expected)} expected"
    assert max(finished.values()) == 1, f"keys with two finished runs: {[k for k, n in finished.items() if n > 1]}"
    assert not [r for r in runs if r.info.status == "RUNNING"], "a run was left RUNNING"
    queue = TrialQueue.open(storage_url, spec.name, create=False)
    complete = queue.trials((COMPLETED,))
    by_key = Counter(t.user_attrs[KEY_ATTR] for t in complete)
    assert set(by_key) == expected and max(by_key.values()) == 1
    run_of = {r.data.tags["trial_key"]: r.info.run_id for r in runs if r.info.status == "FINISHED"}
    assert all(t.user_attrs[RUN_ID_ATTR] == run_of[t.user_attrs[KEY_ATTR]] for t in complete), "Optuna <-> MLflow"
    assert not queue.trials((WAITING, RUNNING))
    return runs, queue


def start_cli(*args: str, cwd: Path) -> tuple[subprocess.Popen, Path]:
    """Start `python -m study ...` in the background; its output goes to a file (a pipe nobody
    reads would fill up and block the workers, which share it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = cwd / f"study-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "study", *args], cwd=cwd, env=env, text=True,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def freeze_worker_mid_trial(proc: subprocess.Popen, log: Path, storage_url: str, study: str, tracking_uri: str,
                            epochs: int, timeout_s: float = 300, pids: set[int] | None = None) -> tuple[int, object]:
    """SIGSTOP a worker (one of `pids`, if given) while it is training a trial (its run open, fewer
    than `epochs` epochs logged).

    Stopped, it cannot move on: whatever we send next lands mid-trial. Returns (pid, trial).
    """
    import mlflow

    client = None  # created once a run exists: never race the study over creating the MLflow schema
    deadline = time.monotonic() + timeout_s
    queue = None
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if proc.poll() is not None:
            raise AssertionError(f"the study ended before a worker was seen mid-trial:\n{log.read_text()[-3000:]}")
        queue = queue or TrialQueue.open(storage_url, study, readonly=True)  # never waits on the frozen one
        if queue is None:
            continue
        for trial in queue.trials((RUNNING,)):
            if RUN_ID_ATTR not in trial.user_attrs or WORKER_ATTR not in trial.user_attrs:
                continue
            pid = int(trial.user_attrs[WORKER_ATTR].rpartition(":")[2])
            if pids is not None and pid not in pids:
                continue
            client = client or mlflow.MlflowClient(tracking_uri=tracking_uri)
            os.kill(pid, signal.SIGSTOP)
            now = queue.trial(trial.number)
            run_id = now.user_attrs.get(RUN_ID_ATTR)
            logged = len(client.get_metric_history(run_id, "loss"))
            if now.state == RUNNING and client.get_run(run_id).info.status == "RUNNING" and logged < epochs:
                return pid, now
            os.kill(pid, signal.SIGCONT)
    raise AssertionError("no worker was seen mid-trial")


def ctrl_c_while_frozen(run: subprocess.Popen, pid: int, settle_s: float) -> None:
    """Ctrl-C the command while worker `pid` is frozen mid-trial (the signal lands mid-trial), let the
    command pass it on for `settle_s`, then let the worker go on and wait for the command to end."""
    run.send_signal(signal.SIGINT)
    time.sleep(settle_s)
    os.kill(pid, signal.SIGCONT)
    run.wait(timeout=300)


def kill_a_worker_mid_trial(args: tuple[str, ...], tmp_path: Path, storage: str, study: str,
                            tracking: str) -> tuple[str, object]:
    """Start `python -m study ARGS` (fast heartbeats), SIGKILL one worker mid-trial, wait for the
    command to finish; return its output and the trial the worker held."""
    run, log = start_cli(*args, "--heartbeat", "1", "--grace", "4", cwd=tmp_path)
    try:
        pid, victim = freeze_worker_mid_trial(run, log, storage, study, tracking, epochs=2)
        os.kill(pid, signal.SIGKILL)
        run.wait(timeout=600)
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 0, output[-4000:]
    assert "was killed by SIGKILL" in output
    return output, victim


def test_four_workers_on_sqlite_train_each_trial_once_and_a_late_worker_does_nothing(tmp_path, data_dir):
    spec = write_spec(tmp_path / "grid16.yaml", GRID16)
    tracking, storage = stores(tmp_path)
    result = run_cli("run", str(spec), "--workers", "4", "--tracking-uri", tracking, "--storage", storage,
                     "--data-dir", str(data_dir), "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "starting 4 worker processes (1 thread(s) each)" in result.stdout
    assert "done: completed 16;" in result.stdout
    runs, queue = assert_each_trial_once(spec, tracking, storage)
    assert len(runs) == 16
    assert len({r.data.tags["worker"] for r in runs}) >= 2, "the trials were shared between workers"
    assert len(queue.workers()) == 4 and {w.state for w in queue.workers()} == {"stopped"}

    late = run_cli("worker", str(spec), "--storage", storage, "--tracking-uri", tracking, cwd=tmp_path)
    assert late.returncode == 0, late.stderr
    assert "study grid16 is already complete (16/16 trials done): nothing to do" in late.stdout
    assert len(trial_runs(tracking, "grid16")) == 16 and len(queue.workers()) == 4, "it wrote nothing"

    status = run_cli("status", str(spec), "--storage", storage, cwd=tmp_path)
    assert status.returncode == 0
    assert "trials: 16/16 done (completed 16)" in status.stdout and "ETA: complete" in status.stdout


def test_four_workers_on_postgresql_train_each_trial_once(tmp_path, data_dir, postgres_db):
    """The multi-machine set-up: Optuna queue and MLflow store both on a PostgreSQL server."""
    spec = write_spec(tmp_path / "grid16.yaml", GRID16)
    tracking, storage = postgres_db("mlflow"), postgres_db("optuna")
    result = run_cli("run", str(spec), "--workers", "4", "--tracking-uri", tracking, "--storage", storage,
                     "--data-dir", str(data_dir), "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs, _ = assert_each_trial_once(spec, tracking, storage)
    assert len(runs) == 16


def test_a_worker_killed_mid_trial_loses_nothing_and_duplicates_nothing(tmp_path, data_dir):
    spec = write_spec(tmp_path / "grid16.yaml", GRID16.replace("epochs: 1", "epochs: 2"))
    tracking, storage = stores(tmp_path)
    _, victim = kill_a_worker_mid_trial(
        ("run", str(spec), "--workers", "3", "--tracking-uri", tracking, "--storage", storage,
         "--data-dir", str(data_dir), "--no-report"), tmp_path, storage, "grid16", tracking)
    runs, queue = assert_each_trial_once(spec, tracking, storage)
    dead = queue.trial(victim.number)
    assert dead.state == FAILED and STATUS_ATTR not in dead.user_attrs, "failed by heartbeat, not by itself"
    retries = [t for t in queue.trials() if t.retry_of == victim.number]
    assert [t.state for t in retries] == [COMPLETED], "re-queued once and finished by another worker"
    assert retries[0].user_attrs[WORKER_ATTR] != victim.user_attrs[WORKER_ATTR]
    killed_run = next(r for r in runs if r.info.run_id == victim.user_attrs[RUN_ID_ATTR])
    assert killed_run.info.status == "KILLED" and killed_run.data.tags["trial_status"] == "interrupted"


def test_sigint_requeues_the_trial_in_progress_and_the_same_command_completes_the_study(tmp_path, data_dir):
    spec = write_spec(tmp_path / "grid6.yaml", GRID6)
    tracking, storage = stores(tmp_path)
    command = ("run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
               "--data-dir", str(data_dir), "--no-report")
    run, log = start_cli(*command, cwd=tmp_path)
    try:
        pid, victim = freeze_worker_mid_trial(run, log, storage, "grid6", tracking, epochs=2)
        ctrl_c_while_frozen(run, pid, settle_s=0.5)  # the parent passes it on to its workers
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 130, output[-4000:]
    assert "interrupted and re-queued" in output
    queue = TrialQueue.open(storage, "grid6", create=False)
    stopped = queue.trial(victim.number)
    assert stopped.state == FAILED and stopped.user_attrs[STATUS_ATTR] == "interrupted"
    copies = [t for t in queue.trials() if t.requeued_from == victim.number]
    assert [t.state for t in copies] == [WAITING], "back in the queue, not yet run"
    runs = trial_runs(tracking, "grid6")
    interrupted = next(r for r in runs if r.info.run_id == victim.user_attrs[RUN_ID_ATTR])
    assert interrupted.info.status == "KILLED" and interrupted.data.tags["trial_status"] == "interrupted"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert {w.state for w in queue.workers()} == {"stopped"}, "both workers stopped cleanly"

    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    runs, queue = assert_each_trial_once(spec, tracking, storage)
    assert copies[0].number in {t.number for t in queue.trials((COMPLETED,))}


# --------------------------------------------------------------------------- tuning on the same workers

TUNE8 = """
name: tune8
epochs: 2
train_subset: 1000
steps_per_execution: 8
base: {hidden_layers: 2, units: 16, optimizer: adam, learning_rate: 0.001, dropout: 0.0}
search_space:
  dropout: {low: 0.0, high: 0.5}
  learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}
n_trials: 8
sampler: {name: random, seed: 5}
pruner: {name: median, n_startup_trials: 2}
retrain_seeds: [1, 2]
"""


def assert_tuning_results_once(tracking_uri: str, storage_url: str, n_trials: int) -> tuple[list, list]:
    """Exactly n_trials results in Optuna, each with one finished MLflow run that mirrors it; no extra training."""
    import optuna

    trials = optuna.load_study(study_name="tune8", storage=storage_url).trials
    results = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(results) == n_trials, Counter(t.state.name for t in trials)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("tune8")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.study_role = 'tune_trial'",
                              max_results=1000)
    finished = {r.info.run_id: r for r in runs if r.info.status == "FINISHED"}
    assert sorted(finished) == sorted(t.user_attrs[RUN_ID_ATTR] for t in results), "one finished run per result"
    for t in results:
        run = finished[t.user_attrs[RUN_ID_ATTR]]
        assert run.data.tags["optuna_state"] == t.state.name and run.data.tags["optuna_trial_number"] == str(t.number)
        assert float(run.data.params["dropout"]) == t.params["dropout"]
    assert not [r for r in runs if r.info.status == "RUNNING"], "a run was left RUNNING"
    return results, runs


def test_tuning_runs_on_three_workers_and_survives_a_killed_one(tmp_path, data_dir):
    """`tune --workers 3`: one Optuna study shared by three worker processes, exactly n_trials results;
    a worker SIGKILLed mid-trial loses nothing: its trial comes back with the same params and is finished."""
    spec = write_spec(tmp_path / "tune8.yaml", TUNE8)
    tracking, storage = stores(tmp_path)
    output, victim = kill_a_worker_mid_trial(
        ("tune", str(spec), "--workers", "3", "--tracking-uri", tracking, "--storage", storage,
         "--data-dir", str(data_dir), "--no-retrain", "--no-report"), tmp_path, storage, "tune8", tracking)
    assert "starting 3 worker processes (1 thread(s) each)" in output
    results, runs = assert_tuning_results_once(tracking, storage, 8)
    assert len({t.user_attrs[WORKER_ATTR] for t in results}) >= 2, "the trials were shared between workers"

    import optuna

    trials = optuna.load_study(study_name="tune8", storage=storage).trials
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL and STATUS_ATTR not in dead.user_attrs, "failed by heartbeat, not by itself"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0] in results, "re-queued once and finished"
    assert retries[0].params == victim.params, "the retry trains the same point, not a new proposal"
    assert retries[0].user_attrs[WORKER_ATTR] != victim.user_attrs[WORKER_ATTR]
    killed_run = next(r for r in runs if r.info.run_id == victim.user_attrs[RUN_ID_ATTR])
    assert killed_run.info.status == "KILLED"

    late = run_cli("worker", str(spec), "--storage", storage, "--tracking-uri", tracking, cwd=tmp_path)
    assert late.returncode == 0, late.stdout + late.stderr
    assert "tuning study tune8 already has its 8/8 results: nothing to do" in late.stdout
    status = run_cli("status", str(spec), "--storage", storage, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "results: 8/8" in status.stdout and "ETA: complete" in status.stdout and "best val_accuracy" in status.stdout


def test_tuning_workers_share_a_postgresql_study_and_a_grid_is_trained_once_per_point(tmp_path, data_dir,
                                                                                      postgres_db):
    """Optuna's GridSampler hands the same point to several workers (optuna#2039); ours enqueues the grid."""
    spec = write_spec(tmp_path / "tune8.yaml", TUNE8.replace("n_trials: 8", "n_trials: 20").replace(
        "sampler: {name: random, seed: 5}", "sampler: {name: grid, points: 3}").replace(
        "learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}", "learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}"))
    tracking, storage = postgres_db("mlflow"), postgres_db("optuna")
    result = run_cli("tune", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
                     "--data-dir", str(data_dir), "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results, _ = assert_tuning_results_once(tracking, storage, 9)  # the whole 3 x 3 grid, then it stops
    points = Counter((t.params["dropout"], t.params["learning_rate"]) for t in results)
    assert len(points) == 9 and max(points.values()) == 1, points
    assert len({t.user_attrs[WORKER_ATTR] for t in results}) == 2
    assert "retrain: base vs tuned with seeds [1, 2]: 4 trial(s) to run" in result.stdout
