"""Your own training code through the real CLI, queue and stores: a function (`train:`) and a script
(`command:`) on two workers, every trial recorded once; a failing command is a failed trial with its last
lines; a worker SIGKILLed during a command leaves no process behind and the trial is trained once; tuning
runs a function; bad code exits 2 with one line and creates nothing; a `build(hp)` builder trains a study.

The user's code lives in a directory of its own (on PYTHONPATH, as a user's would) and never imports
`study`; it trains nothing heavy, so most of the time is process start-up."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path

import mlflow
import psutil
import pytest

from study.queue.records import COMPLETED
from study.queue.trial_queue import TrialQueue
from tests.conftest import ROOT, run_cli
from tests.execution.test_workers import start_cli

pytestmark = [pytest.mark.integration]

OWN_TRAIN = '''
"""A user's training function: a made-up learner whose accuracy rises with the learning rate and alpha."""
import os
import random
import time


def meet_another_worker():
    """Test-only (OWN_MEET_DIR set): wait at most 300 s (a loaded CI machine starts a process slowly) until a
    second process has started a trial, so a worker that starts late still takes part instead of finding the
    queue already drained by the first one."""
    folder = os.environ.get("OWN_MEET_DIR")
    if not folder:
        return
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 300
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def train(config, reporter):
    meet_another_worker()
    rng = random.Random(config.seed)
    top = 0.6 + (0.2 if config.learning_rate > 0.05 else 0.0) + config["alpha"] / 10
    for epoch in range(config.epochs):
        val = top * (epoch + 1) / config.epochs + rng.gauss(0, 0.01)
        if reporter.epoch(epoch, loss=1 - val, val_accuracy=val):
            break
    return {"val_accuracy": val, "loss": 1 - val, "test_accuracy": val - 0.01}


def build(hp):
    """Keras Tuner's convention: build(hp), the data's shape and classes on hp."""
    import keras

    inputs = keras.Input(shape=hp.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hp.Int("units", 8, 64), activation=hp.Choice("activation", ["relu", "tanh"]))(x)
    return keras.Model(inputs, keras.layers.Dense(hp.num_classes, activation="softmax")(x))
'''

OWN_SCRIPT = '''
"""A user's training script: options in, MLflow metrics out; it can fail, or hang (and start a child) once."""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--seed", type=int)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--fail-seed", type=int, default=-1)
parser.add_argument("--hang-seed", type=int, default=-1)
parser.add_argument("--marker", default="")
args = parser.parse_args()
if args.seed == args.hang_seed and not os.path.exists(args.marker):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(args.marker + ".tmp", "w") as out:
        json.dump({"script": os.getpid(), "child": child.pid}, out)
    os.rename(args.marker + ".tmp", args.marker)
    time.sleep(600)
if args.seed == args.fail_seed:
    print("epoch 0 ...")
    raise ValueError(f"planted failure at seed {args.seed}")
rng = random.Random(args.seed)
for epoch in range(args.epochs):
    val = 0.5 + args.lr + 0.1 * epoch + rng.gauss(0, 0.01)
    mlflow.log_metrics({"loss": 1 - val, "val_accuracy": val}, step=epoch)
mlflow.log_metric("test_accuracy", val - 0.01)
'''

FUNCTION_SPEC = """
name: own_function
train: own_train:train
dataset: digits
epochs: 3
seeds: [0, 1]
hyperparameters:
  alpha: {type: float, low: 0.0, default: 0.1}
factors:
  learning_rate: [0.01, 0.1]
  alpha: [0.1, 0.2]
confirm: {top_k: 1, seeds: [7], path: false}
"""

COMMAND_SPEC = """
name: own_command
command: "python {script} --lr {{learning_rate}} --seed {{seed}} {more}"
dataset: digits
seeds: [0, 1]
factors:
  learning_rate: [0.01, 0.1]
"""


@pytest.fixture()
def own(tmp_path):
    """The user's code in a directory of its own, and the environment that puts it on PYTHONPATH."""
    code = tmp_path / "my_code"
    code.mkdir()
    (code / "own_train.py").write_text(textwrap.dedent(OWN_TRAIN))
    (code / "own_script.py").write_text(textwrap.dedent(OWN_SCRIPT))
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{code}", "script": str(code / "own_script.py")}


def stores(tmp_path: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]


def command_spec(tmp_path: Path, own: dict, more: str = "", name: str = "own_command") -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(COMMAND_SPEC.format(script=own["script"], more=more).replace("own_command", name))
    return spec


def trial_runs(tmp_path: Path, study: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    return client.search_runs([experiment.experiment_id], filter_string="tags.study_role = 'trial'",
                              max_results=1000)


def assert_each_key_once(tmp_path: Path, study: str, keys: int) -> list:
    """`keys` trial keys, each with exactly one FINISHED completed run and one COMPLETE queue trial; none RUNNING."""
    runs = trial_runs(tmp_path, study)
    finished = Counter(r.data.tags["trial_key"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == keys and max(finished.values()) == 1, finished
    assert {r.data.tags["trial_status"] for r in runs if r.info.status == "FINISHED"} == {"completed"}
    assert not [r for r in runs if r.info.status == "RUNNING"], "a run was left RUNNING"
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", study, create=False)
    complete = Counter(t.key for t in queue.trials((COMPLETED,)))
    assert set(complete) == set(finished) and max(complete.values()) == 1
    return [r for r in runs if r.info.status == "FINISHED"]


@pytest.mark.slow
def test_a_function_and_a_script_train_on_two_workers_each_trial_once(tmp_path, own):
    spec = tmp_path / "own_function.yaml"
    spec.write_text(FUNCTION_SPEC)
    meet = tmp_path / "meet"  # the trials take milliseconds: without it one worker can drain the queue alone
    meet.mkdir()
    result = run_cli("run", str(spec), "--workers", "2", *stores(tmp_path), "--reports-dir",
                     str(tmp_path / "reports"), cwd=tmp_path, env={**own, "OWN_MEET_DIR": str(meet)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "code: own_train:train (checked)" in result.stdout and "starting 2 worker processes" in result.stdout
    runs = assert_each_key_once(tmp_path, "own_function", 8 + 1)  # the grid, then the confirm stage's best config
    assert len({r.data.tags["worker"] for r in runs}) == 2, "the trials were shared between the workers"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for run_ in runs:
        assert run_.data.params["train"] == "own_train:train" and run_.data.params["executor"] == "function"
        assert {"final_val_accuracy", "final_loss", "test_accuracy", "best_val_accuracy", "last_loss",
                "epochs_run"} <= set(run_.data.metrics)
        steps = [m.step for m in client.get_metric_history(run_.info.run_id, "val_accuracy")]
        assert steps == [0, 1, 2], "each reported epoch logged once"
    report = (tmp_path / "reports" / "own_function" / "README.md").read_text()
    assert "- Training code: `own_train:train` (your own, `train:`) with the data `digits`" in report
    assert "## Leaderboard" in report and "alpha=0.2" in report and "lesson" not in report.lower()

    spec = command_spec(tmp_path, own)
    result = run_cli("run", str(spec), "--workers", "2", *stores(tmp_path), "--no-report", cwd=tmp_path, env=own)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = assert_each_key_once(tmp_path, "own_command", 4)
    for run_ in runs:
        seed, lr = run_.data.params["seed"], run_.data.params["learning_rate"]
        assert run_.data.tags["command_line"].endswith(f"own_script.py --lr {lr} --seed {seed}")
        history = client.get_metric_history(run_.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [0, 1, 2], "the script's own epochs, not logged again"
        assert run_.data.metrics["final_val_accuracy"] == history[-1].value
        assert "command.log" in {a.path for a in client.list_artifacts(run_.info.run_id)}


@pytest.mark.slow
def test_a_failing_command_is_a_failed_trial_with_its_last_lines(tmp_path, own):
    spec = command_spec(tmp_path, own, more="--fail-seed 1", name="own_failing")
    result = run_cli("run", str(spec), *stores(tmp_path), "--no-report", cwd=tmp_path, env=own)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "done: completed 2, failed 2;" in result.stdout, result.stdout[-2000:]
    failed = [line for line in result.stdout.splitlines() if "| failed" in line]
    assert len(failed) == 2 and all(line.endswith("| CommandFailed: the command exited with status 1: ValueError: planted "
                                                     "failure at seed 1")
                                    for line in failed), failed
    runs = trial_runs(tmp_path, "own_failing")
    bad = [r for r in runs if r.data.tags["trial_status"] == "failed"]
    assert len(bad) == 2 and {r.info.status for r in bad} == {"FAILED"}
    error = bad[0].data.tags["error"]
    assert "CommandFailed" in error and "epoch 0 ..." in error and "Traceback (most recent call last)" in error
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    log = Path(client.download_artifacts(bad[0].info.run_id, "command.log", str(tmp_path))).read_text()
    assert "ValueError: planted failure at seed 1" in log


def gone(pid: int) -> bool:
    """Not running any more (a zombie waiting for init to reap it runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_a_worker_killed_during_a_command_leaves_no_process_and_the_trial_is_trained_once(tmp_path, own):
    marker = tmp_path / "hung.json"
    spec = command_spec(tmp_path, own, more=f"--hang-seed 0 --marker {marker}", name="own_killed")
    run, log = start_cli("run", str(spec), "--workers", "2", *stores(tmp_path), "--no-report", "--heartbeat", "1",
                         "--grace", "4", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert time.monotonic() < deadline and run.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        pids = json.loads(marker.read_text())
        guard = psutil.Process(pids["script"]).parent()
        worker = guard.parent()
        assert "command_guard.py" in " ".join(guard.cmdline()) and "worker" in " ".join(worker.cmdline())
        os.kill(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in (pids["script"], pids["child"], guard.pid)):
            assert time.monotonic() < deadline, "the command's processes outlived their worker"
            time.sleep(0.2)
        run.wait(timeout=300)
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 0, output[-3000:]
    assert "was killed by SIGKILL" in output
    runs = assert_each_key_once(tmp_path, "own_killed", 4)
    seed0 = [r for r in trial_runs(tmp_path, "own_killed") if r.data.params["seed"] == "0"]
    assert sorted(r.info.status for r in seed0) == ["FINISHED", "FINISHED", "KILLED"], "killed once, then trained"
    assert len(runs) == 4


@pytest.mark.slow
def test_tuning_runs_a_function_and_retrains_its_best(tmp_path, own):
    import optuna

    spec = tmp_path / "own_tune.yaml"
    spec.write_text(textwrap.dedent("""
        name: own_tune
        train: own_train:train
        dataset: digits
        epochs: 3
        hyperparameters:
          alpha: {type: float, low: 0.0, default: 0.1}
        search_space:
          alpha: {low: 0.0, high: 1.0}
          learning_rate: {low: 0.01, high: 0.1, log: true}
        n_trials: 4
        sampler: {name: random, seed: 0}
        retrain_seeds: [1, 2]
        """))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli("tune", str(spec), *stores(tmp_path), "--no-report", cwd=tmp_path, env=own)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = optuna.load_study(study_name="own_tune", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["own_tune"], output_format="list")
    tuned = [r for r in runs if r.data.tags.get("study_role") == "tune_trial"]
    assert sorted(float(r.data.params["hp.alpha"]) for r in tuned) == sorted(t.params["alpha"] for t in trials)
    retrained = [r for r in runs if r.data.tags.get("study_role") == "trial" and "level.arm" in r.data.tags]
    assert sorted((r.data.tags["level.arm"], r.data.params["seed"]) for r in retrained) == [
        ("base", "1"), ("base", "2"), ("tuned", "1"), ("tuned", "2")]  # base and tuned, 2 seeds, each once


@pytest.mark.parametrize("change, words", [
    ({"train": "missing_module:train"}, "own.yaml: train: cannot import 'missing_module'"),
    ({"train": "own_train:build"}, "own.yaml: train: own_train:build takes (hp); it is called as build(config, "
                                   "reporter)"),
    ({"command": "python x.py --lr {lr}"}, "own.yaml: command: placeholder {lr} names no config field"),
    ({"train": "own_train:train", "command": "python x.py"}, "own.yaml: command: train and command are two ways"),
])
def test_bad_code_exits_2_with_one_line_and_creates_nothing(change, words, tmp_path, own):
    spec = tmp_path / "own.yaml"
    spec.write_text("name: own\ndataset: digits\nfactors: {learning_rate: [0.01, 0.1]}\n"
                    + "".join(f"{key}: \"{value}\"\n" for key, value in change.items()))
    before = set(os.listdir(tmp_path))
    result = run_cli("run", str(spec), *stores(tmp_path), cwd=tmp_path, env=own)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert set(os.listdir(tmp_path)) == before


@pytest.mark.slow
def test_a_builder_of_hp_alone_trains_a_study(tmp_path, own):
    spec = tmp_path / "own_build.yaml"
    spec.write_text("name: own_build\nmodel: own_train:build\ndataset: digits\nepochs: 1\nbatch_size: 64\n"
                    "factors: {units: [8, 16]}\n")
    result = run_cli("run", str(spec), *stores(tmp_path), "--no-report", cwd=tmp_path, env=own)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "model: own_train:build builds a keras.Model for each of the 2 model structure(s)" in result.stdout
    runs = assert_each_key_once(tmp_path, "own_build", 2)
    assert sorted(int(r.data.params["units"]) for r in runs) == [8, 16]
    assert sorted(r.data.metrics["params"] for r in runs) == [64 * 8 + 8 + 8 * 10 + 10, 64 * 16 + 16 + 16 * 10 + 10]
