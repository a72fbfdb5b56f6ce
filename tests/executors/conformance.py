"""The executor conformance suite: what every executor must do (the scikit-learn `check_estimator` idea).

Run as a script, one backend per process (Keras fixes its backend at import):
    python tests/executors/conformance.py EXECUTOR BACKEND DATA_DIR
It prints one JSON line {check: "ok" | failure message} and exits 1 if any check failed.
tests/executors/test_conformance.py runs it for every registered executor.

Checks: results complete and in order; hooks see every epoch with the standard metric
names; `should_stop` ends one trial early and only that one; NaN makes a trial
`diverged` and leaves the others of its batch untouched; a set stop event raises
Interrupted; the kept (best val_loss) epoch's weights are the ones tested and saved;
the same batch twice gives the same numbers; bit-identity with plain Keras where the
executor claims it, else a trial alone and in a group agree to float rounding; one
MLflow child run per trial through the tracked path; a user's own model (a builder
module with its own hyperparameters, tests/executors/user_cnn.py) on digits trains too.
The executors of your own code (`function`, `command`) run the same checks on a NumPy MLP of
the suite's (tests/executors/numpy_trainer.py); NOT_APPLICABLE says which checks do not apply
to them and why.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import traceback
from pathlib import Path

EXECUTOR, BACKEND, DATA_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from study.training.backend import select_backend  # noqa: E402

select_backend(BACKEND)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from study.config import TrialConfig  # noqa: E402
from study.core.errors import Interrupted  # noqa: E402
from study.data.mnist import load_mnist  # noqa: E402
from study.data.splits import SplitCache  # noqa: E402
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks  # noqa: E402
from study.training.executors.registry import executor_for  # noqa: E402
from study.training.models import model_inputs  # noqa: E402
from study.training.results import EPOCH_METRICS  # noqa: E402

CACHE = SplitCache(preloaded={"mnist": load_mnist(DATA_DIR)})
# Your own code (train:, command:) is the suite's NumPy MLP (tests/executors/numpy_trainer.py): no Keras inside.
OWN_CODE = {"function": {"train": "tests.executors.user_train:train"},
            "command": {"command": "python tests/executors/user_script.py"}}
BASE = TrialConfig(train_subset=1024, epochs=3, hidden_layers=2, units=16, backend=BACKEND, executor=EXECUTOR,
                   batch_size=32, **OWN_CODE.get(EXECUTOR, {}))
SETTINGS = ExecutionSettings(steps_per_execution=8, save_model=False)
EXECUTOR_OBJ = executor_for(EXECUTOR)
os.environ["STUDY_DATA_DIR"] = DATA_DIR  # where a command's own process finds MNIST
_OWN = "your code trains its own model, keeps what it likes and computes its own numbers"
# Checks that do not apply to an executor, and why (reported as "n/a: why"; every other check must pass).
NOT_APPLICABLE = {executor: {
    "check_kept_epoch_is_tested_and_saved": f"{_OWN}: the framework saves no model of it",
    "check_agrees_with_keras": f"{_OWN} (here NumPy, not Keras): nothing to compare with plain Keras",
    "check_user_model_trains": "a model: builder is the Keras executors' (a spec with train:/command: and model: "
                               "exits 2)",
} for executor in OWN_CODE}


def splits_for(config: TrialConfig):
    return CACHE.get(config.dataset, config.validation, config.train_subset)


def run(configs, hooks=None, settings=SETTINGS, stop=None):
    workdir = Path(tempfile.mkdtemp(prefix="conformance-"))
    batch = Batch(configs=configs, splits=[splits_for(c) for c in configs],
                  hooks=hooks or [TrialHooks() for _ in configs], workdir=workdir, stop=stop or threading.Event(),
                  run_ids=scratch_runs(len(configs)) if getattr(EXECUTOR_OBJ, "logs_own_epochs", False) else ())
    return EXECUTOR_OBJ.run(batch, settings)


def scratch_runs(count: int) -> list[str]:
    """Runs for an executor whose code logs into the trial's run itself (a command), in a scratch store."""
    import mlflow

    from study.tracking.store import configure, experiment_id

    uri = configure(f"sqlite:///{tempfile.mkdtemp(prefix='conformance-scratch-')}/mlflow.db")
    exp = experiment_id("scratch", uri)
    return [mlflow.MlflowClient().create_run(exp).info.run_id for _ in range(count)]


def group() -> list[TrialConfig]:
    """Three trials one executor call can take together (same structure and seed), differing in init, rate and
    schedule."""
    return [BASE.replace(seed=0, init="xavier", learning_rate=0.05),
            BASE.replace(seed=0, init="he", learning_rate=0.02),
            BASE.replace(seed=0, init="xavier", learning_rate=0.1, schedule="warmup_cosine_corrected",
                         warmup_epochs=1)]


def check_results_complete_and_in_order() -> None:
    configs = group()
    results = run(configs)
    assert [r.config for r in results] == configs, "results must come back in the batch's order"
    for r in results:
        assert r.status == "completed", r.status
        assert {m: len(r.history[m]) for m in EPOCH_METRICS} == {m: BASE.epochs for m in EPOCH_METRICS}, r.history
        for name in ("final_val_accuracy", "final_val_loss", "test_accuracy", "test_loss", "best_epoch", "params"):
            assert name in r.final and math.isfinite(r.final[name]), (name, r.final)
        assert 0.3 < r.final["final_val_accuracy"] <= 1.0, r.final  # learned: well above chance (10%)
    peak = configs[2].learning_rate  # warm-up (e + 1) / (W + 1) * peak for e < W = 1, then cosine to epoch 3
    planned = [peak / 2] + [peak * 0.5 * (1 + math.cos(math.pi * (e - 1) / 2)) for e in (1, 2)]
    assert np.allclose(results[2].history["learning_rate"], planned, rtol=1e-6), results[2].history["learning_rate"]


def check_hooks_see_every_epoch() -> None:
    seen: dict[int, list] = {0: [], 1: []}
    hooks = [TrialHooks(on_epoch_end=lambda e, logs, i=i: seen[i].append((e, sorted(logs)))) for i in range(2)]
    run(group()[:2], hooks)
    for i in range(2):
        assert [e for e, _ in seen[i]] == list(range(BASE.epochs)), seen[i]
        assert all(names == sorted(EPOCH_METRICS) for _, names in seen[i]), seen[i]


def check_should_stop_ends_one_trial() -> None:
    hooks = [TrialHooks(should_stop=lambda e, logs: True), TrialHooks()]
    results = run(group()[:2], hooks)
    assert results[0].epochs_run == 1 and results[0].stopped_by_hook, results[0].history
    assert results[1].epochs_run == BASE.epochs and not results[1].stopped_by_hook


def check_nan_is_diverged_and_contained() -> None:
    configs = [BASE.replace(seed=0, init="normal", learning_rate=1e30), group()[1]]
    results = run(configs)
    assert results[0].status == "diverged", results[0].history
    assert results[1].status == "completed" and results[1].epochs_run == BASE.epochs
    alone = run([configs[1]])[0]
    assert np.allclose(alone.history["val_loss"], results[1].history["val_loss"], rtol=1e-4, atol=1e-5), \
        "a diverging neighbour must not change a trial"


def check_stop_event_interrupts() -> None:
    stop = threading.Event()
    hooks = [TrialHooks(on_epoch_end=lambda e, logs: stop.set()) for _ in range(2)]
    try:
        run(group()[:2], hooks, stop=stop)
    except Interrupted:
        return
    raise AssertionError("a set stop event must raise Interrupted at the next batch")


def check_kept_epoch_is_tested_and_saved() -> None:
    config = BASE.replace(optimizer="adam", learning_rate=0.02, epochs=4, seed=3)
    result, = run([config], settings=ExecutionSettings(steps_per_execution=8, save_model=True))
    best = int(result.final["best_epoch"])
    assert best == int(np.argmin(result.history["val_loss"])), result.history
    assert result.final["final_val_accuracy"] == result.history["val_accuracy"][best]
    assert result.model_path is not None and result.model_path.suffix == ".keras", result.model_path
    model = keras.models.load_model(result.model_path)
    splits = splits_for(config)
    _, val_acc = model.evaluate(model_inputs(model, splits.x_val), splits.y_val, verbose=0, batch_size=2048)
    assert abs(val_acc - result.history["val_accuracy"][best]) < 1e-6, (val_acc, result.history)
    _, test_acc = model.evaluate(model_inputs(model, splits.x_test), splits.y_test, verbose=0, batch_size=2048)
    assert abs(test_acc - result.final["test_accuracy"]) < 1e-6


def check_same_batch_same_numbers() -> None:
    first, second = run(group()), run(group())
    assert [r.history for r in first] == [r.history for r in second], "one seed must determine a trial"
    other = run([group()[0].replace(seed=1)])[0]
    assert other.history["loss"] != first[0].history["loss"], "another seed must give another trial"


def plain_keras(config: TrialConfig) -> dict:
    """The lesson's way: a fresh model, Keras' own fit, one step per call."""
    from study.data.registry import dataset_info
    from study.training.models import build_model
    from study.training.optimizers import build_optimizer

    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, dataset_info(config.dataset))
    model.compile(optimizer=build_optimizer(config), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    splits = splits_for(config)
    fit = model.fit(model_inputs(model, splits.x_train), splits.y_train, batch_size=config.batch_size,
                    epochs=config.epochs, validation_data=(model_inputs(model, splits.x_val), splits.y_val),
                    validation_batch_size=2048, shuffle=True, verbose=0)
    return {name: [float(v) for v in fit.history[name]] for name in ("loss", "accuracy", "val_loss", "val_accuracy")}


def check_agrees_with_keras() -> None:
    configs = group()[:2]
    results = run(configs)
    if EXECUTOR_OBJ.bit_identical_to_keras:
        for config, result in zip(configs, results):
            expected = plain_keras(config)
            assert {k: result.history[k] for k in expected} == expected, (result.history, expected)
        return
    alone = [run([c])[0] for c in configs]
    for config, a, g in zip(configs, alone, results):  # one epoch: only float rounding may differ
        expected = plain_keras(config.replace(epochs=1))
        for name in ("loss", "val_loss", "val_accuracy"):
            assert abs(a.history[name][0] - g.history[name][0]) <= 1e-4 * max(1.0, abs(a.history[name][0])), \
                ("alone vs in a group", name, a.history[name][0], g.history[name][0])
            assert abs(expected[name][0] - g.history[name][0]) <= 1e-4 * max(1.0, abs(expected[name][0])), \
                ("vs plain Keras", name, expected[name][0], g.history[name][0])


def check_one_mlflow_run_per_trial() -> None:
    import mlflow

    from study.execution.tracked import run_tracked
    from study.spec.designs import Trial
    from study.tracking.store import configure, experiment_id

    uri = f"sqlite:///{tempfile.mkdtemp(prefix='conformance-mlflow-')}/mlflow.db"
    configure(uri)
    exp = experiment_id("conformance", uri)
    trials = [Trial(c, {"case": str(i)}) for i, c in enumerate(group())]
    outcomes = run_tracked(trials, "conformance", exp, CACHE, SETTINGS, EXECUTOR_OBJ)
    assert [o.status for o in outcomes] == ["completed"] * 3, [o.status for o in outcomes]
    runs = mlflow.search_runs(experiment_ids=[exp], output_format="list")
    assert len(runs) == 3 and {r.data.tags["trial_key"] for r in runs} == {t.key for t in trials}
    for run_ in runs:
        assert run_.info.status == "FINISHED" and run_.data.params["executor"] == EXECUTOR
        history = mlflow.MlflowClient().get_metric_history(run_.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(BASE.epochs)), history


def check_user_model_trains() -> None:
    """A model of the user's own (a builder module, its own hyperparameters) on digits trains like the lesson's."""
    user = TrialConfig(model="tests.executors.user_cnn:build", dataset="digits", epochs=3, batch_size=64,
                       batch_norm=True, dropout=0.2, optimizer="adam", learning_rate=0.003, backend=BACKEND,
                       executor=EXECUTOR, hparams={"filters": 8, "kernel_size": 3})
    configs = [user.replace(seed=0), user.replace(seed=1)]
    results = run(configs)
    assert [r.status for r in results] == ["completed"] * 2, [r.status for r in results]
    assert all(0.3 < r.final["final_val_accuracy"] <= 1.0 for r in results), [r.final for r in results]  # chance: 0.1
    assert results[0].history != results[1].history, "each trial's own seed"
    if EXECUTOR_OBJ.bit_identical_to_keras:
        expected = plain_keras(configs[1])
        assert {k: results[1].history[k] for k in expected} == expected, (results[1].history, expected)


CHECKS = [check_results_complete_and_in_order, check_hooks_see_every_epoch, check_should_stop_ends_one_trial,
          check_nan_is_diverged_and_contained, check_stop_event_interrupts, check_kept_epoch_is_tested_and_saved,
          check_same_batch_same_numbers, check_agrees_with_keras, check_one_mlflow_run_per_trial,
          check_user_model_trains]

if __name__ == "__main__":
    outcome = {}
    for check in CHECKS:
        if check.__name__ in NOT_APPLICABLE.get(EXECUTOR, {}):
            outcome[check.__name__] = f"n/a: {NOT_APPLICABLE[EXECUTOR][check.__name__]}"
            continue
        try:
            check()
            outcome[check.__name__] = "ok"
        except Exception as exc:  # noqa: BLE001 - every check's failure is reported, then the suite fails
            outcome[check.__name__] = f"{type(exc).__name__}: {str(exc)[:800]}\n{traceback.format_exc()[-1500:]}"
    print(json.dumps(outcome))
    sys.exit(0 if all(v == "ok" or v.startswith("n/a: ") for v in outcome.values()) else 1)
