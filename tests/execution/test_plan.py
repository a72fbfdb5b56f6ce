"""`study plan`: trials, trial-epochs and predicted wall time from a per-machine calibration, measured once and
cached with its date and CPU; `study run` prints the prediction first."""

from __future__ import annotations

import json

import pytest
import yaml

from study.execution.calibration import entry_key
from study.execution.plan import describe, make_plan, predict_seconds, spec_trials
from study.spec.study_spec import parse_spec
from tests.conftest import run_cli, write_spec

SPEC = """
name: plan_tiny
epochs: 2
batch_size: 32
validation: holdout
train_subset: 500
seeds: [0, 1, 2, 3]
base: {units: 16}
factors:
  activation: [sigmoid, relu]
  optimizer: [sgd, adam]
adaptive: {start_seeds: 2, max_seeds: 4}
"""


def test_the_prediction_adds_each_trial_s_calibrated_cost_over_the_workers(mnist):
    spec = parse_spec(yaml.safe_load(SPEC))
    every, start = spec_trials(spec)
    assert (len(every), len(start)) == (16, 8)  # adaptive: start seeds to max_seeds
    entry = {"overhead_s": 1.0, "per_epoch_s": 0.5, "per_example_s": 0.001, "compile_s": 2.0, "startup_s": 10.0,
             "queue_s": 0.0}
    entries = {entry_key(t.config, "keras", 2): entry for t in every}
    seconds = predict_seconds(every, entries, "keras", 2, {"mnist": mnist}, {})
    per_trial = 1.0 + 2 * (0.5 + 0.001 * 500)
    assert seconds == pytest.approx(10.0 + 2.0 + 16 * per_trial / 2)  # one cost class: compiled once


@pytest.mark.integration
@pytest.mark.slow
def test_plan_calibrates_once_and_run_prints_the_prediction_first(tmp_path, data_dir):
    spec = write_spec(tmp_path / "plan_tiny.yaml", SPEC)
    env = {"STUDY_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("plan", str(spec), "--data-dir", str(data_dir), "--workers", "1", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    assert "calibrating 1 model structure(s) for the keras executor with 1 worker(s)" in first.stdout
    assert "plan: plan_tiny: 8-16 trials, 16-32 trial-epochs" in first.stdout
    assert "keras executor, 1 worker(s):" in first.stdout and "calibrated 20" in first.stdout
    cache = json.loads((tmp_path / "cache" / "calibration.json").read_text())
    entry = next(iter(cache.values()))
    assert entry["cpu"] and entry["date"] and entry["per_example_s"] >= 0
    assert "calibrating a whole `study run` with 1 worker(s)" in first.stdout
    launch = cache[next(k for k in cache if k.startswith("launch|"))]
    assert launch["wall_s"] > launch["launch_s"] > 0, launch  # a real run's wall time, less its one trial
    assert not (tmp_path / "mlflow.db").exists(), "planning creates no store"

    again = run_cli("plan", str(spec), "--data-dir", str(data_dir), "--workers", "1", cwd=tmp_path, env=env)
    assert "calibrating" not in again.stdout and "keras executor, 1 worker(s):" in again.stdout  # cached

    run = run_cli("run", str(spec), "--data-dir", str(data_dir), "--no-report", "--tracking-uri",
                  f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[0].startswith("plan: plan_tiny: 8-16 trials") and "predicted" in \
        run.stdout.splitlines()[0], run.stdout[:500]
    later = run_cli("plan", str(spec), "--data-dir", str(data_dir), "--workers", "1", "--tracking-uri",
                    f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, env=env)
    assert "from the earlier run of plan_tiny" in later.stdout and "optimizer: adam vs sgd:" in later.stdout


def test_describe_says_how_to_calibrate_when_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path))
    spec = parse_spec(yaml.safe_load(SPEC), source="plan_tiny.yaml")
    plan = make_plan(spec, {}, measure=False, executors=["keras"], workers=[1])
    assert describe(spec, plan, 1)[0] == ("plan: plan_tiny: 8-16 trials, 16-32 trial-epochs (adaptive: start seeds "
                                          "to max_seeds); no calibration of this machine for keras x1 yet "
                                          "(`python -m study plan plan_tiny.yaml` measures it)")
