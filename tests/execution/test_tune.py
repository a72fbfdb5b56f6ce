"""Optuna tuning: spec validation, study resume rules, and a tiny tuning study end to end
through the real Keras training, Optuna SQLite storage and MLflow SQLite store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from study.config import TrialConfig
from study.core.errors import SpecError
from study.spec.tune_spec import Param, parse_tune_spec
from tests.conftest import ROOT, run_cli, run_datasets, write_spec

GOOD = {
    "name": "t",
    "epochs": 2,
    "train_subset": 500,
    "base": {"optimizer": "sgd", "learning_rate": 0.01, "dropout": 0.0},
    "search_space": {"dropout": {"low": 0.0, "high": 0.5},
                     "learning_rate": {"low": 1.0e-4, "high": 0.1, "log": True}},
    "n_trials": 3,
}


def bad(**changes):
    raw = {**GOOD, **changes}
    return {k: v for k, v in raw.items() if v is not ...}


def space(**params):
    return {**GOOD["search_space"], **params}


# --------------------------------------------------------------------------- spec validation


@pytest.mark.parametrize(
    "raw, key, words",
    [
        (bad(search_space=space(dropout={"low": 0.2, "high": 0.2})), "search_space.dropout", ["empty range"]),
        (bad(search_space=space(dropout={"low": 0.4, "high": 0.1})), "search_space.dropout", ["inverted range"]),
        (bad(search_space=space(dropout={"low": 0.0, "high": 0.5, "log": True})), "search_space.dropout.low",
         ["must be > 0 for a log range"]),
        (bad(search_space=space(learning_rate={"low": 0.0, "high": 0.1, "log": True})),
         "search_space.learning_rate.low", ["learning_rate > 0"]),
        (bad(search_space=space(dropout={"low": 0.0, "high": 1.0})), "search_space.dropout.high",
         ["0 <= dropout < 1"]),
        (bad(search_space=space(dropout={"low": 0.0, "high": 1.5})), "search_space.dropout.high",
         ["0 <= dropout < 1"]),
        (bad(search_space=space(depth={"low": 1, "high": 4})), "search_space.depth",
         ["unknown or non-numeric field", "dropout", "learning_rate", "units"]),
        (bad(search_space=space(activation={"low": 0, "high": 1})), "search_space.activation",
         ["unknown or non-numeric field"]),
        (bad(search_space=space(seed={"low": 0, "high": 9})), "search_space.seed", ["unknown or non-numeric"]),
        (bad(search_space=space(learning_rate={"low": "1e-4", "high": 0.1, "log": True})),
         "search_space.learning_rate.low", ["must be a number", "1.0e-4"]),
        (bad(search_space=space(units={"low": 16.5, "high": 64})), "search_space.units.low", ["integer"]),
        (bad(search_space=space(dropout={"low": 0.0})), "search_space.dropout.high", ["is required"]),
        (bad(search_space=space(dropout={"low": 0.0, "high": 0.5, "scale": "log"})), "search_space.dropout.scale",
         ["unknown key", "low, high, log, step"]),
        (bad(search_space=space(learning_rate={"low": 1e-4, "high": 0.1, "log": True, "step": 0.01})),
         "search_space.learning_rate.step", ["log"]),
        (bad(search_space={}), "search_space", ["non-empty mapping"]),
        (bad(search_space=...), "search_space", ["non-empty mapping"]),
        (bad(sampler="cmaes"), "sampler", ["'cmaes'", "tpe, random, grid"]),
        (bad(sampler={"name": "tpe", "sed": 1}), "sampler.sed", ["unknown key", "seed"]),
        (bad(sampler={"name": "grid", "points": 1}), "sampler.points", [">= 2"]),
        (bad(pruner="asha"), "pruner", ["'asha'", "median, hyperband, none"]),
        (bad(pruner={"name": "median", "n_startup_trials": -1}), "pruner.n_startup_trials", ["integer >= 0"]),
        (bad(n_trials=0), "n_trials", ["integer >= 1"]),
        (bad(n_trials=2.5), "n_trials", ["integer >= 1"]),
        (bad(timeout=0), "timeout", ["> 0"]),
        (bad(metric="accuracy"), "metric", ["val_accuracy, val_loss"]),
        (bad(direction="minimize"), "direction", ["contradicts metric 'val_accuracy'"]),
        (bad(retrain_seeds=[1]), "retrain_seeds", ["at least 2 seeds"]),
        (bad(retrain_seeds=[1, 1]), "retrain_seeds", ["duplicates"]),
        (bad(enqueue=[{"dropout": 0.7}]), "enqueue[0].dropout", ["[0.0, 0.5]"]),
        (bad(enqueue=[{"units": 64}]), "enqueue[0].units", ["unknown key"]),
        (bad(base={"dropout": 1.0}), "base.dropout", ["0 <= dropout < 1"]),
        (bad(base_from="t"), "base_from", ["must differ"]),
        (bad(colour="red"), "colour", ["unknown key", "search_space"]),
        (bad(base={"schedule": "warmup_cosine", "warmup_epochs": 1},
             search_space=space(warmup_epochs={"low": 0, "high": 3})),
         "search_space", ["epochs > warmup_epochs", "warmup_epochs=3"]),
    ],
)
def test_bad_tune_spec_is_rejected_naming_the_key(raw, key, words):
    with pytest.raises(SpecError) as err:
        parse_tune_spec(raw, source="ablations/bad.yaml")
    message = str(err.value)
    assert message.startswith(f"ablations/bad.yaml: {key}: "), message
    for word in words:
        assert word in message, message


def test_tune_spec_defaults_and_types():
    spec = parse_tune_spec({**GOOD, "search_space": space(units={"low": 16, "high": 128, "log": True})})
    assert (spec.sampler.name, spec.sampler.options["seed"]) == ("tpe", 0)
    assert spec.pruner.name == "median" and spec.direction == "maximize" and spec.metric == "val_accuracy"
    assert spec.base == TrialConfig(train_subset=500, epochs=2, optimizer="sgd", learning_rate=0.01, seed=0)
    assert spec.space["units"].is_int and spec.space["units"].step == 1
    assert spec.retrain_seeds == (1, 2, 3) and spec.enqueue_base
    assert spec.config_for({"dropout": 0.3}) == spec.base.replace(dropout=0.3)


def test_grid_points_are_spaced_inside_the_range():
    assert Param("learning_rate", 1e-4, 1e-1, log=True).grid(4) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert Param("dropout", 0.0, 0.5).grid(3) == [0.0, 0.25, 0.5]
    assert Param("units", 16, 128, log=True, step=1).grid(4) == [16, 32, 64, 128]


def test_shipped_tune_spec_is_valid_and_searches_dropout_and_lr():
    from study.spec.tune_spec import load_tune_spec

    spec = load_tune_spec(ROOT / "ablations" / "tune_dropout_lr.yaml")
    assert spec.space["dropout"].low == 0.0 and spec.space["dropout"].high == 0.5
    assert spec.space["learning_rate"].log and spec.space["learning_rate"].low > 0
    assert spec.sampler.name == "tpe" and spec.pruner.name == "median"
    assert "subset" in spec.description or "epochs" in spec.description


# --------------------------------------------------------------------------- study and storage rules


def test_new_study_tries_the_base_first_and_resume_refuses_another_search(tmp_path):
    from study.tuning.optuna_setup import open_queue

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = parse_tune_spec({**GOOD, "enqueue": [{"dropout": 0.1, "learning_rate": 0.05}]})
    study = open_queue(spec, url).study
    assert [t.state.name for t in study.trials] == ["WAITING", "WAITING"]
    # Loading it again (resume) enqueues nothing more.
    assert len(open_queue(spec, url).study.trials) == 2
    proposed = []
    for _ in range(2):  # what the sampler hands out first: the base, then the spec's point
        trial = study.ask()
        proposed.append((trial.suggest_float("dropout", 0.0, 0.5),
                         trial.suggest_float("learning_rate", 1e-4, 0.1, log=True)))
    assert proposed == [(0.0, 0.01), (0.1, 0.05)]
    # n_trials may grow on resume, the search itself may not change.
    assert len(open_queue(parse_tune_spec({**GOOD, "n_trials": 9}), url).study.trials) == 2
    with pytest.raises(SpecError, match=r"search_space: differs from the Optuna study 't'"):
        open_queue(parse_tune_spec({**GOOD, "search_space": space(dropout={"low": 0.0, "high": 0.3})}), url)
    with pytest.raises(SpecError, match=r"base: differs"):
        open_queue(parse_tune_spec({**GOOD, "epochs": 3}), url)
    with pytest.raises(SpecError, match=r"metric: differs|direction: "):
        open_queue(parse_tune_spec({**GOOD, "metric": "val_loss"}), url)


def test_a_tuning_study_refuses_the_name_of_an_ablation_queue(tmp_path):
    from study.queue.trial_queue import QueueItem, TrialQueue
    from study.tuning.optuna_setup import open_queue

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    TrialQueue.open(url, "t").enqueue([QueueItem(key="k", config={})])
    with pytest.raises(SpecError, match=r"name: the Optuna study 't' in this storage is not a tuning study"):
        open_queue(parse_tune_spec(GOOD), url)


def test_samplers_and_pruners_are_built_as_specified():
    import optuna

    from study.tuning.optuna_setup import make_pruner, make_sampler

    grid = parse_tune_spec({**GOOD, "sampler": {"name": "grid", "points": 3}, "pruner": "hyperband"})
    assert isinstance(make_sampler(grid), optuna.samplers.GridSampler)
    assert isinstance(make_pruner(grid), optuna.pruners.HyperbandPruner)
    assert make_pruner(grid)._max_resource == 2  # a trial's resource is its epochs
    assert isinstance(make_sampler(parse_tune_spec(GOOD)), optuna.samplers.TPESampler)
    assert isinstance(make_pruner(parse_tune_spec({**GOOD, "pruner": "none"})), optuna.pruners.NopPruner)


def test_base_from_takes_the_best_config_by_mean_over_seeds(tracking_uri):
    """Synthetic finished ablation runs in a real MLflow store: the best mean over seeds wins,
    not the single best run, and the tune spec's own settings override it."""
    import mlflow

    from study.core.names import KEY_TAG, ROLE_TAG, STATUS_TAG
    from study.execution.bootstrap import resolve_base_from
    from study.tracking.store import configure, experiment_id

    configure(tracking_uri)
    exp = experiment_id("abl", tracking_uri)
    results = {("adam", 0.001): [0.97, 0.90], ("sgd", 0.01): [0.95, 0.95]}  # adam has the best run, sgd the mean
    for (optimizer, lr), accs in results.items():
        for seed, acc in enumerate(accs):
            config = TrialConfig(optimizer=optimizer, learning_rate=lr, units=64, seed=seed)
            with mlflow.start_run(experiment_id=exp, tags={ROLE_TAG: "trial", KEY_TAG: config.key(),
                                                           STATUS_TAG: "completed"}):
                mlflow.log_params(config.as_dict())
                mlflow.log_metrics({"final_val_accuracy": acc, "test_accuracy": acc})
    raw = {k: v for k, v in GOOD.items() if k != "base"}
    spec = resolve_base_from(parse_tune_spec({**raw, "name": "tuned", "base_from": "abl"}), tracking_uri)
    assert spec.base == TrialConfig(optimizer="sgd", learning_rate=0.01, units=64, epochs=2, train_subset=500)
    with pytest.raises(SpecError, match="base_from: no finished trials of the ablation study 'nope'"):
        resolve_base_from(parse_tune_spec({**raw, "name": "tuned", "base_from": "nope"}), tracking_uri)


# --------------------------------------------------------------------------- CLI: bad input


def test_cli_rejects_bad_input_before_any_trial(tmp_path):
    spec = write_spec(tmp_path / "bad.yaml", "name: b\nsearch_space:\n  dropout: {low: 0.5, high: 0.1}\n")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli("tune", str(spec), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "bad.yaml: search_space.dropout: inverted range" in result.stderr
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "m.db").exists()
    assert not (tmp_path / "reports").exists()


# --------------------------------------------------------------------------- end to end


TINY = """\
name: tiny_tune
description: A tiny tuning study for the tests (500 images, 2 epochs).
epochs: 2
train_subset: 500
steps_per_execution: 16
base: {{hidden_layers: 2, units: 32, optimizer: sgd, learning_rate: 0.01, dropout: 0.0}}
search_space:
  dropout: {{low: 0.0, high: 0.5}}
  learning_rate: {{low: 1.0e-4, high: 1.0e-1, log: true}}
n_trials: 3
{timeout}
sampler: {{name: random, seed: 3}}
# median of the completed trials from the first one on, so the poor third trial is pruned at epoch 1
pruner: {{name: median, n_startup_trials: 1}}
enqueue: [{{dropout: 0.0, learning_rate: 0.1}}, {{dropout: 0.5, learning_rate: 1.0e-4}}]
retrain_seeds: [1, 2]
"""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, data_dir):
    """One tiny study run three times: cut short by a timeout (like an interrupted run), resumed
    to n_trials, then run again with nothing left to do."""
    work = tmp_path_factory.mktemp("tune")
    first = write_spec(work / "tiny_first.yaml", TINY.format(timeout="timeout: 0.1"))
    spec = write_spec(work / "tiny.yaml", TINY.format(timeout=""))
    common = ["--storage", f"sqlite:///{work / 'optuna.db'}", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
              "--data-dir", str(data_dir), "--reports-dir", str(work / "reports")]
    runs = [run_cli("tune", str(first), *common, "--no-retrain", "--no-report", cwd=work),
            run_cli("tune", str(spec), *common, cwd=work),
            run_cli("tune", str(spec), *common, cwd=work)]
    for result in runs:
        assert result.returncode == 0, result.stdout + result.stderr
    return work, runs


def _optuna_trials(work: Path):
    import optuna

    return optuna.load_study(study_name="tiny_tune", storage=f"sqlite:///{work / 'optuna.db'}").trials


def _mlflow_runs(work: Path, role: str):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("tiny_tune")
    return mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string=f"tags.study_role = '{role}'",
                              output_format="list")


@pytest.mark.integration
def test_resume_continues_the_count_up_to_n_trials(tuned):
    work, (first, second, third) = tuned
    assert "0 of 3 trials done, 3 to run" in first.stdout
    assert "1 of 3 trials done, 2 to run" in second.stdout
    assert "3 of 3 trials done, 0 to run" in third.stdout
    trials = _optuna_trials(work)
    assert [t.number for t in trials] == [0, 1, 2]
    # The base first, then the spec's points, in order, each exactly once.
    assert [t.params for t in trials] == [{"dropout": 0.0, "learning_rate": 0.01},
                                          {"dropout": 0.0, "learning_rate": 0.1},
                                          {"dropout": 0.5, "learning_rate": 1e-4}]
    parents = _mlflow_runs(work, "study")
    assert len(parents) == 3  # one parent run per invocation


@pytest.mark.integration
def test_every_invocation_run_shows_the_data_its_trials_use(tuned):
    work, _ = tuned
    data = set().union(*(run_datasets(r) for r in _mlflow_runs(work, "tune_trial")))
    parents = _mlflow_runs(work, "study")
    assert len(data) == 3 and all(run_datasets(p) == data for p in parents)


@pytest.mark.integration
def test_optuna_trials_and_mlflow_runs_match_one_to_one(tuned):
    work, _ = tuned
    trials = _optuna_trials(work)
    runs = {r.info.run_id: r for r in _mlflow_runs(work, "tune_trial")}
    assert len(runs) == len(trials) == 3
    assert sorted(t.user_attrs["mlflow_run_id"] for t in trials) == sorted(runs)
    for t in trials:
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.data.tags["optuna_trial_number"] == str(t.number)
        assert run.data.tags["optuna_state"] == t.state.name
        assert run.data.tags["optuna_study"] == "tiny_tune"
        assert float(run.data.params["dropout"]) == t.params["dropout"]
        assert float(run.data.params["learning_rate"]) == t.params["learning_rate"]
        assert run.data.tags["trial_key"] == t.user_attrs["trial_key"]
        assert "mlflow.parentRunId" in run.data.tags
        history = _metric_history(work, run.info.run_id, "val_accuracy")
        assert len(history) == t.user_attrs["epochs_run"] == len(t.intermediate_values)
        # What the pruner saw is what MLflow logged (step = epochs completed vs epoch index).
        assert [v for _, v in sorted(t.intermediate_values.items())] == pytest.approx([m.value for m in history])


def _metric_history(work: Path, run_id: str, metric: str):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    return sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)


@pytest.mark.integration
def test_pruned_trial_is_recorded_as_pruned_not_failed(tuned):
    from optuna.trial import TrialState

    work, _ = tuned
    trials = _optuna_trials(work)
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    pruned = trials[2]
    assert len(pruned.intermediate_values) == 1  # stopped after its first of 2 epochs
    run = {r.info.run_id: r for r in _mlflow_runs(work, "tune_trial")}[pruned.user_attrs["mlflow_run_id"]]
    assert run.data.tags["trial_status"] == "pruned"
    assert run.info.status == "FINISHED"  # a result, not a failure
    assert run.data.metrics["epochs_run"] == 1


@pytest.mark.integration
def test_base_and_tuned_are_retrained_once_per_seed(tuned):
    work, runs = tuned
    retrain = _mlflow_runs(work, "trial")
    arms = sorted((r.data.tags["level.arm"], r.data.params["seed"]) for r in retrain)
    assert arms == [("base", "1"), ("base", "2"), ("tuned", "1"), ("tuned", "2")]  # not duplicated by run 3
    tuned_runs = [r for r in retrain if r.data.tags["level.arm"] == "tuned"]
    assert {float(r.data.params["learning_rate"]) for r in tuned_runs} == {0.1}  # the best trial's config
    assert "retrain: base vs tuned with seeds [1, 2]: 0 trial(s) to run" in runs[2].stdout


@pytest.mark.integration
def test_report_is_generated(tuned):
    work, _ = tuned
    out = work / "reports" / "tiny_tune"
    readme = (out / "README.md").read_text()
    for section in ["# Tuning study `tiny_tune`", "## Best trial", "## Top 2 trials", "## Optimization history",
                    "## Parameter importances", "FanovaImportanceEvaluator", "## learning_rate x dropout",
                    "## Pruning", "1 of 3 finished trials were pruned", "1 of 6 planned trial-epochs unrun",
                    "## Tuned vs untuned base, retrained", "95% Student-t interval", "## Spec"]:
        assert section in readme, section
    assert "Trial #1: val_accuracy" in readme
    assert "test accuracy" in readme and ("beats the base" in readme or "is equivalent to the base" in readme
                                          or "worse than the base" in readme or "cannot tell" in readme)
    assert "matches the base" not in readme  # a non-significant difference is not a match
    assert "TOST" in readme and "Pruning caveat" in readme and "2 of 3" in readme  # 2 completed of 3 finished
    for run_id in (t.user_attrs["mlflow_run_id"] for t in _optuna_trials(work) if t.state.name == "COMPLETE"):
        assert run_id in readme
    for figure in ["history", "intermediate", "importances", "param_map", "retrain"]:
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000, figure
    import pandas as pd

    table = pd.read_csv(out / "tables" / "trials.csv")
    assert list(table["state"]) == ["COMPLETE", "COMPLETE", "PRUNED"]
    retrain = pd.read_csv(out / "tables" / "retrain_summary.csv")
    assert retrain["n seeds"].tolist() == [2, 2]
    assert retrain["TOST p"].between(0, 1).all() and (retrain["90% CI low"] <= retrain["90% CI high"]).all()
    importances = pd.read_csv(out / "tables" / "importances.csv")
    assert any(c.endswith("all trials at epoch 1") for c in importances.columns)  # pruned trials stopped at 1


# --------------------------------------------------------------------------- dashboard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_storage_on_localhost(tmp_path):
    """Starts optuna-dashboard the way `make dashboard` does and reads the study back over HTTP."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="dash", direction="maximize")
    study.optimize(lambda t: -(t.suggest_float("dropout", 0.0, 0.5) - 0.2) ** 2, n_trials=3)
    port = _free_port()
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen([str(dashboard), storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        body = None
        deadline = time.time() + 60
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    body = json.loads(response.read())
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        summaries = {s["study_name"]: s for s in body["study_summaries"]}
        assert "dash" in summaries
        assert summaries["dash"]["directions"] == ["maximize"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "dashboard" in (ROOT / "Makefile").read_text()
