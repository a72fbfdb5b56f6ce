"""The study's workers as Ray actors (`--ray`), through the real CLI on a real local Ray instance:
real Keras training, real MLflow and Optuna stores (SQLite files and a PostgreSQL server).

One Ray instance (2 CPUs, no dashboard, a small object store) serves the module; each study
command connects to it with `--ray ADDRESS`, as a submission to an existing cluster would.
Actors are killed with `ray.kill` mid-trial (once restarted by Ray, once for good): every
trial must still be recorded exactly once, no run left RUNNING, and every result equal to
what local worker processes record. Ray is an optional dependency: without it these tests
skip, except in CI, which installs it (`make install-ray`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from study.core.names import RUN_ID_ATTR, STATUS_ATTR, WORKER_ATTR
from study.queue.records import COMPLETED, FAILED, RUNNING, WAITING
from study.queue.trial_queue import TrialQueue
from tests.conftest import run_cli, write_spec
from tests.execution.test_workers import (GRID6, TUNE8, assert_each_trial_once, assert_tuning_results_once,
                                          ctrl_c_while_frozen, freeze_worker_mid_trial, start_cli, stores,
                                          trial_runs)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# 8 trials of 2 epochs on 1,000 images: long enough to kill two actors mid-trial, one after the other.
GRID8 = GRID6.replace("name: grid6", "name: grid8").replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3]")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance sized for a shared 2-core machine; this test process is a driver on it too."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is required in CI (make install-ray)")
        pytest.skip("Ray not installed (pip install -e '.[ray]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024**2,
             log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, data_dir) -> dict[str, tuple[float, float]]:
    """What two local worker processes record for GRID8: key -> (final val accuracy, final test accuracy)."""
    tmp = tmp_path_factory.mktemp("local")
    spec = write_spec(tmp / "grid8.yaml", GRID8)
    tracking, storage = stores(tmp)
    result = run_cli("run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
                     "--data-dir", str(data_dir), "--no-report", cwd=tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return results_by_key(tracking, "grid8")


def results_by_key(tracking: str, study: str) -> dict[str, tuple[float, float]]:
    return {r.data.tags["trial_key"]: (r.data.metrics["final_val_accuracy"], r.data.metrics["test_accuracy"])
            for r in trial_runs(tracking, study) if r.info.status == "FINISHED"}


def study_actors(study: str, count: int, timeout_s: float = 400) -> dict[int, object]:
    """The `count` Ray actors a study command started (named `<study>:<pid>:<n>:w<i>`), by process id.

    An actor is named as soon as it is requested, but answers `info` only once its process has started and
    imported the package: on a slow, loaded machine that took over a minute, so one deadline covers both.
    """
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == "study" and a["name"].startswith(f"{study}:")]
        if len(names) == count:
            actors = [ray.get_actor(name, namespace="study") for name in names]
            infos = ray.get([actor.info.remote() for actor in actors], timeout=max(1.0, deadline - time.monotonic()))
            return {info["pid"]: actor for info, actor in zip(infos, actors)}
        time.sleep(0.5)
    raise AssertionError(f"{count} actors of {study} did not appear")


def kill_actor_mid_trial(run, log: Path, storage: str, tracking: str, study: str, actors: dict[int, object],
                         restart: bool) -> object:
    """Freeze one of `actors` mid-trial, `ray.kill` it (Ray restarts it if `restart`); return its trial."""
    import ray

    pid, victim = freeze_worker_mid_trial(run, log, storage, study, tracking, epochs=2, pids=set(actors))
    ray.kill(actors[pid], no_restart=not restart)
    os.kill(pid, signal.SIGCONT)  # let it take Ray's kill at once (a stopped process is only SIGKILLed later)
    return victim


def kill_two_actors_and_finish(tmp_path: Path, data_dir: Path, ray_address: str, tracking: str, storage: str,
                               local_results: dict) -> None:
    """Two actors; one is killed mid-trial and restarted by Ray, then the other is killed mid-trial for good.
    The study still ends with every trial once, nothing RUNNING, and the local workers' results."""
    spec = write_spec(tmp_path / "grid8.yaml", GRID8)
    run, log = start_cli("run", str(spec), "--ray", ray_address, "--workers", "2", "--max-restarts", "1",
                         "--tracking-uri", tracking, "--storage", storage, "--data-dir", str(data_dir),
                         "--no-report", "--heartbeat", "1", "--grace", "4", cwd=tmp_path)
    try:
        actors = study_actors("grid8", 2)
        restarted = kill_actor_mid_trial(run, log, storage, tracking, "grid8", actors, restart=True)
        other = {pid: actor for pid, actor in actors.items()
                 if pid != int(restarted.user_attrs[WORKER_ATTR].rpartition(":")[2])}
        killed = kill_actor_mid_trial(run, log, storage, tracking, "grid8", other, restart=False)
        run.wait(timeout=600)
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 0, output[-4000:]
    assert "starting 2 Ray worker(s) (1 CPU(s) and 1 thread(s) each" in output
    assert "Ray restarts it (restart 1 of 1)" in output and "died and is not restarted" in output, output[-4000:]
    assert "done: completed 8;" in output
    runs, queue = assert_each_trial_once(spec, tracking, storage)
    for victim in (restarted, killed):
        dead = queue.trial(victim.number)
        assert dead.state == FAILED and STATUS_ATTR not in dead.user_attrs, "failed by heartbeat"
        retries = [t for t in queue.trials() if t.retry_of == victim.number]
        assert [t.state for t in retries] == [COMPLETED], "re-queued once and finished by a live worker"
        killed_run = next(r for r in runs if r.info.run_id == victim.user_attrs[RUN_ID_ATTR])
        assert killed_run.info.status == "KILLED" and killed_run.data.tags["trial_status"] == "interrupted"
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking)
    everything = client.search_runs([client.get_experiment_by_name("grid8").experiment_id], max_results=1000)
    assert not [r for r in everything if r.info.status == "RUNNING"], "a parent run was left RUNNING"
    assert results_by_key(tracking, "grid8") == local_results, "Ray actors record what local workers record"


def test_ray_actors_killed_mid_trial_on_sqlite_lose_and_duplicate_nothing(tmp_path, data_dir, ray_address,
                                                                         local_results):
    tracking, storage = stores(tmp_path)
    kill_two_actors_and_finish(tmp_path, data_dir, ray_address, tracking, storage, local_results)


def test_ray_actors_killed_mid_trial_on_postgresql_lose_and_duplicate_nothing(tmp_path, data_dir, ray_address,
                                                                             local_results, postgres_db):
    """The cluster set-up: the queue and the MLflow store on a PostgreSQL server."""
    kill_two_actors_and_finish(tmp_path, data_dir, ray_address, postgres_db("mlflow"), postgres_db("optuna"),
                               local_results)


def test_ctrl_c_stops_the_actors_requeues_their_trials_and_the_same_command_finishes(tmp_path, data_dir,
                                                                                    ray_address):
    """No --workers: as many as fit (2 on 2 CPUs). SIGINT on the command stops both actors cleanly."""
    spec = write_spec(tmp_path / "grid6.yaml", GRID6)
    tracking, storage = stores(tmp_path)
    command = ("run", str(spec), "--ray", ray_address, "--tracking-uri", tracking, "--storage", storage,
               "--data-dir", str(data_dir), "--no-report")
    run, log = start_cli(*command, cwd=tmp_path)
    try:
        actors = study_actors("grid6", 2)
        pid, victim = freeze_worker_mid_trial(run, log, storage, "grid6", tracking, epochs=2, pids=set(actors))
        ctrl_c_while_frozen(run, pid, settle_s=1.0)
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 130, output[-4000:]
    assert "starting 2 Ray worker(s)" in output and "stopping the Ray workers" in output
    assert "interrupted and re-queued" in output
    queue = TrialQueue.open(storage, "grid6", create=False)
    stopped = queue.trial(victim.number)
    assert stopped.state == FAILED and stopped.user_attrs[STATUS_ATTR] == "interrupted"
    copies = [t for t in queue.trials() if t.requeued_from == victim.number]
    assert [t.state for t in copies] == [WAITING], "back in the queue, not yet run"
    assert not queue.trials((RUNNING,)), "every trial in progress was given back"
    assert not [r for r in trial_runs(tracking, "grid6") if r.info.status == "RUNNING"]
    assert {w.state for w in queue.workers()} == {"stopped"}, "both actors stopped cleanly"

    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert_each_trial_once(spec, tracking, storage)


def test_tuning_on_ray_actors_gives_exactly_n_trials(tmp_path, data_dir, ray_address):
    spec = write_spec(tmp_path / "tune8.yaml", TUNE8.replace("n_trials: 8", "n_trials: 4"))
    tracking, storage = stores(tmp_path)
    result = run_cli("tune", str(spec), "--ray", ray_address, "--workers", "2", "--tracking-uri", tracking,
                     "--storage", storage, "--data-dir", str(data_dir), "--no-retrain", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "starting 2 Ray worker(s)" in result.stdout
    results, _ = assert_tuning_results_once(tracking, storage, 4)
    assert len({t.user_attrs[WORKER_ATTR] for t in results}) == 2, "both actors tuned"


def test_a_two_node_cluster_refuses_sqlite_and_trains_on_postgresql_with_a_worker_on_each_node(
        tmp_path, data_dir, ray_address, postgres_db):
    """Two raylets on this machine stand for two machines (1 CPU each): a SQLite file is not shared between
    them, so it is refused before anything is created; on PostgreSQL the grid trains with one actor per
    node, every trial recorded once."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 80 * 1024**2})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2)
        cluster.wait_for_nodes()
        spec = write_spec(tmp_path / "grid6.yaml", GRID6)
        tracking, storage = stores(tmp_path)
        refused = run_cli("run", str(spec), "--ray", cluster.address, "--tracking-uri", tracking, "--storage",
                          storage, "--data-dir", str(data_dir), "--no-report", cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
        assert "error: --storage sqlite:///" in refused.stderr and "use PostgreSQL for --storage" in refused.stderr
        assert not list(tmp_path.glob("*.db")), "nothing was created"

        tracking, storage = postgres_db("mlflow"), postgres_db("optuna")
        result = run_cli("run", str(spec), "--ray", cluster.address, "--tracking-uri", tracking, "--storage",
                         storage, "--data-dir", str(data_dir), "--no-report", cwd=tmp_path)
    finally:
        cluster.shutdown()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "starting 2 Ray worker(s) (1 CPU(s)" in output, "as many as fit: one per 1-CPU node"
    nodes = {line.rpartition("(id ")[2] for line in output.splitlines() if line.startswith("Ray worker w")}
    assert len(nodes) == 2, f"the two actors ran on the two nodes: {output[-3000:]}"
    runs, _ = assert_each_trial_once(spec, tracking, storage)
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}


def test_ray_options_without_ray_are_refused(tmp_path):
    spec = write_spec(tmp_path / "grid6.yaml", GRID6)
    result = run_cli("run", str(spec), "--gpus-per-worker", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert "--gpus-per-worker: gpus_per_worker: applies to Ray workers only; add --ray [ADDRESS]" in result.stderr
