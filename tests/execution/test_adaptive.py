"""Adaptive studies through the real CLI, real Keras training and real stores: rounds are queue state.

- a run killed mid-round (the parent and its workers, SIGKILL: a machine that lost power) resumes with the same
  command; every trial of every round is trained once, and the report and status tell the rounds;
- two machines' worth of workers on PostgreSQL (a `study run` and a separate `study worker`) both keep working
  across round boundaries; each round is decided once;
- an adaptive tuning spec is refused with one line, exit 2.
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

from study.core.names import KEY_ATTR, WORKER_ATTR
from study.execution.adaptive_rounds import round_records
from study.queue.records import COMPLETED, RUNNING, WAITING
from study.queue.trial_queue import TrialQueue
from study.spec.study_spec import load_spec
from tests.conftest import ROOT, run_cli, write_spec

# sigmoid under SGD learns slowly and unevenly on 1000 examples: its effects stay open after the start seeds,
# while adam vs sgd is decided at once
SPEC = """
name: adaptive_tiny
lesson: true  # the lesson's claims are targets too: more of them stay open, so later rounds have trials for two
epochs: 1
batch_size: 32
validation: holdout
train_subset: 1000
seeds: [0, 1, 2, 3]
base: {units: 16, init: xavier}
factors:
  activation: [sigmoid, relu]
  optimizer:
    - sgd: {optimizer: sgd, learning_rate: 0.1}
    - adam: {optimizer: adam, learning_rate: 0.01}
adaptive: {start_seeds: 2, max_seeds: 4, margin_pp: 1.0, alpha: 0.05}
"""


def start(*args: str, cwd: Path) -> tuple[subprocess.Popen, Path]:
    """`python -m study ARGS` in its own process group, output to a file."""
    log = cwd / f"study-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "study", *args], cwd=cwd, text=True, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                start_new_session=True)
    return proc, log


def round_keys(queue: TrialQueue, spec) -> list[set[str]]:
    """The trial keys of each round: round 0 the start seeds, then what each round record asks for."""
    start_seeds = set(spec.seeds[:spec.adaptive.start_seeds])
    rounds, _ = round_records(queue)
    return [{t.key for t in spec.unique_trials() if t.config.seed in start_seeds}] + [set(r["keys"]) for r in rounds]


def assert_every_round_trained_once(spec_path: Path, tracking: str, storage: str) -> tuple[TrialQueue, list]:
    import mlflow

    spec = load_spec(spec_path)
    queue = TrialQueue.open(storage, spec.name, create=False)
    rounds, finished = round_records(queue)
    assert finished is not None, "the study recorded its finish"
    keys = round_keys(queue, spec)
    expected = set().union(*keys)
    assert sum(len(k) for k in keys) == len(expected), "no round asks for a trial an earlier round ran"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name(spec.name)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.study_role = 'trial'", max_results=1000)
    done = Counter(r.data.tags["trial_key"] for r in runs if r.info.status == "FINISHED")
    assert set(done) == expected and max(done.values()) == 1, done
    assert not [r for r in runs if r.info.status == "RUNNING"], "a run was left RUNNING"
    complete = Counter(t.user_attrs[KEY_ATTR] for t in queue.trials((COMPLETED,)))
    assert set(complete) == expected and max(complete.values()) == 1
    assert not queue.trials((WAITING, RUNNING))
    return queue, keys


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_killed_mid_round_resumes_with_the_same_command_and_trains_every_trial_once(tmp_path, data_dir):
    spec_path = write_spec(tmp_path / "adaptive_tiny.yaml", SPEC)
    spec = load_spec(spec_path)
    tracking, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    command = ("run", str(spec_path), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
               "--data-dir", str(data_dir), "--reports-dir", str(tmp_path / "reports"), "--heartbeat", "1",
               "--grace", "3")
    run, log = start(*command, cwd=tmp_path)
    killed_in = None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and run.poll() is None:
            if (tmp_path / "optuna.db").is_file():
                queue = TrialQueue.open(storage, spec.name, create=False)
                rounds, _ = round_records(queue)
                if rounds:
                    keys = set(rounds[0]["keys"])
                    states = {t.user_attrs.get(KEY_ATTR): t.state for t in queue.trials()}
                    if any(states.get(k) in (RUNNING, COMPLETED) for k in keys):
                        os.killpg(run.pid, signal.SIGKILL)  # the parent and its workers, mid-round 1
                        killed_in = Counter(str(states.get(k)) for k in keys)
                        break
            time.sleep(0.2)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert killed_in is not None, "round 1 never started: " + log.read_text()[-3000:]
    assert killed_in.get(str(COMPLETED), 0) < sum(killed_in.values()), f"killed after round 1 finished: {killed_in}"

    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "rounds where targets are open" in again.stdout or "already done" in again.stdout
    queue, keys = assert_every_round_trained_once(spec_path, tracking, storage)
    assert len(keys) >= 2

    status = run_cli("status", str(spec_path), "--storage", storage, cwd=tmp_path)
    assert f"adaptive: finished after {len(keys)} round(s)" in status.stdout, status.stdout
    report = (tmp_path / "reports" / spec.name / "README.md").read_text()
    spent = sum(len(k) for k in keys)
    assert "## Adaptive rounds" in report and f"**Spent: {spent} trials ({spent} trial-epochs)" in report
    assert "of the fixed design at 4 seeds (16 trials, 16 trial-epochs)" in report
    assert "repeated confidence intervals" in report and "Lan-DeMets" in report  # the method section names it
    assert (tmp_path / "reports" / spec.name / "figures" / "adaptive_progress.png").is_file()
    assert f"Finished trials: {spent} of {spent} expected" in report


@pytest.mark.integration
@pytest.mark.slow
def test_workers_of_two_machines_on_postgresql_keep_working_across_rounds(tmp_path, data_dir, postgres_db):
    spec_path = write_spec(tmp_path / "adaptive_tiny.yaml", SPEC)
    tracking, storage = postgres_db("mlflow"), postgres_db("optuna")
    stores = ("--tracking-uri", tracking, "--storage", storage, "--data-dir", str(data_dir))
    machine_a, log_a = start("run", str(spec_path), "--workers", "1", "--no-report", "--heartbeat", "1",
                             "--grace", "3", *stores, cwd=tmp_path)
    time.sleep(3)  # the run creates the queue; the second machine's worker joins it
    # an idle worker looks for new trials every heartbeat: 1 s on both machines, so either can take a round's
    # trials (each takes about a second here)
    machine_b, log_b = start("worker", str(spec_path), "--heartbeat", "1", "--grace", "3", *stores, cwd=tmp_path)
    try:
        assert machine_a.wait(timeout=500) == 0, log_a.read_text()[-3000:]
        assert machine_b.wait(timeout=120) == 0, log_b.read_text()[-3000:]
    finally:
        for proc in (machine_a, machine_b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    queue, keys = assert_every_round_trained_once(spec_path, tracking, storage)
    assert len(keys) >= 2, "the study went past round 0"
    later = set().union(*keys[1:])
    workers = {t.user_attrs[WORKER_ATTR] for t in queue.trials((COMPLETED,)) if t.user_attrs[KEY_ATTR] in later}
    rounds, finished = round_records(queue)
    machines = {t.user_attrs[WORKER_ATTR] for t in queue.trials((COMPLETED,))}
    deciders = {r["decided_by"] for r in rounds} | {finished["decided_by"]}
    # Each machine worked past round 0: it trained a trial of a later round or decided a round (a small later
    # round can be trained whole by one machine while the other one decides the next)
    assert len(machines) == 2 and workers | deciders == machines, (workers, deciders, machines, [len(k) for k in keys])
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1)), "each round recorded once, in order"
    assert finished["rounds"] == len(keys)


def test_an_adaptive_tuning_spec_is_refused_with_one_line(tmp_path):
    spec = write_spec(tmp_path / "tune.yaml", """
name: tune_adaptive
search_space:
  learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}
n_trials: 4
adaptive: {start_seeds: 2, max_seeds: 4}
""")
    result = run_cli("tune", str(spec), "--storage", f"sqlite:///{tmp_path / 'o.db'}", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "adaptive" in lines[0] and "not supported in a tuning spec" in lines[0], lines
    assert not (tmp_path / "o.db").exists(), "nothing was created"
