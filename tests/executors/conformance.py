"""The executor conformance suite: what every executor must do (the scikit-learn `check_estimator` idea).

Run as a script, one backend per process (Keras fixes its backend at import):
    python tests/executors/conformance.py EXECUTOR BACKEND DATA_DIR [CHECK ...]
(CHECK: run only the checks so named, e.g. check_probes_are_logged). It prints one JSON line {check: "ok" | failure message} and exits 1 if any check failed.
tests/executors/test_conformance.py runs it for every registered executor.

Checks: results complete and in order; hooks see every epoch with the standard metric
names; `should_stop` ends one trial early and only that one; NaN makes a trial
`diverged` and leaves the others of its batch untouched (bit for bit); a trial's numbers
are the same alone, in a group of 3 and in a group of 12, wherever it sits among them (bit
for bit: the fused executor's fixed-width lanes); a set stop event raises Interrupted; the kept (best val_loss) epoch's weights are the ones tested and saved;
the same batch twice gives the same numbers; bit-identity with plain Keras where the
executor claims it, else one epoch agrees with it to float rounding; one
MLflow child run per trial through the tracked path; a user's own model (a builder
module with its own hyperparameters, tests/executors/user_cnn.py) on digits trains too;
the mechanism probes (study.training.probes) are logged each epoch, show sigmoid with
N(0, 1) init saturated where ReLU with He is not, leave training unchanged, and agree
with the Keras executor's on JAX; every declared factor (TrialConfig field) changes what
the executor computes and agrees with the Keras executor's within FACTOR_RTOL, or is
declared inert for the executor and refused in one line.
The executors of your own code (`function`, `command`) run the same checks on a NumPy MLP of
the suite's (tests/executors/numpy_trainer.py); NOT_APPLICABLE says which checks do not apply
to them and why.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import tempfile
import threading
import time
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

PROBES = ["grad_norm/dense_0", "grad_norm/dense_1", "grad_norm/softmax", "saturated/dense_0", "saturated/dense_1"]

CACHE = SplitCache(preloaded={"mnist": load_mnist(DATA_DIR)})
# Your own code (train:, command:) is the suite's NumPy MLP (tests/executors/numpy_trainer.py): no Keras inside.
OWN_CODE = {"function": {"train": "tests.executors.user_train:train"},
            "command": {"command": "python tests/executors/user_script.py"}}
BASE = TrialConfig(train_subset=1024, epochs=3, hidden_layers=2, units=16, backend=BACKEND, executor=EXECUTOR,
                   batch_size=32, **OWN_CODE.get(EXECUTOR, {}))
SETTINGS = ExecutionSettings(steps_per_execution=8, save_model=False)
LOGGED_PROBES = [] if EXECUTOR in OWN_CODE else PROBES  # your own code has no Keras layers for the probes to read
EXECUTOR_OBJ = executor_for(EXECUTOR)
os.environ["STUDY_DATA_DIR"] = DATA_DIR  # where a command's own process finds MNIST
_OWN = "your code trains its own model, keeps what it likes and computes its own numbers"
# Checks that do not apply to an executor, and why (reported as "n/a: why"; every other check must pass).
NOT_APPLICABLE = {executor: {
    "check_kept_epoch_is_tested_and_saved": f"{_OWN}: the framework saves no model of it",
    "check_agrees_with_keras": f"{_OWN} (here NumPy, not Keras): nothing to compare with plain Keras",
    "check_user_model_trains": "a model: builder is the Keras executors' (a spec with train:/command: and model: "
                               "exits 2)",
    "check_probes_are_logged": f"{_OWN}: the mechanism probes read a Keras model's layers, and there is none",
    "check_probes_agree_with_keras_executor": f"{_OWN}: no probes to compare",
    "check_probes_leave_training_unchanged": f"{_OWN}: no probes to switch off",
    "check_every_factor_acts": f"{_OWN}: which config fields it reads is its own (the suite's NumPy MLP reads a few)",
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
        assert all(names == sorted([*EPOCH_METRICS, *LOGGED_PROBES]) for _, names in seen[i]), seen[i]


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
    assert alone.history == results[1].history, ("a diverging neighbour must not change a trial", alone.history,
                                                 results[1].history)


def check_group_independent() -> None:
    """One seed determines a trial: alone, in a group of 3 (last) and, for the fused executor, in a group of 12
    (sixth), among neighbours of other inits, rates, schedules and early stopping, its histories and final
    metrics are equal bit for bit (issue 22: fused programs of other widths rounded differently)."""
    target = BASE.replace(seed=1, init="he", batch_norm=True, optimizer="adam", learning_rate=0.003)
    neighbours = [target.replace(init=init, learning_rate=rate, schedule=schedule, warmup_epochs=1,
                                 early_stopping_patience=1 if schedule == "plateau" else 0)
                  for init, rate, schedule in itertools.product(("normal", "xavier"), (0.01, 0.001),
                                                                ("constant", "plateau", "warmup_cosine_corrected"))]
    alone = run([target])[0]
    groups = [("a group of 3", [neighbours[0], neighbours[4], target], 2)]
    # The fused executor compiles one program per group width, and a wider one must round the same; the
    # others train one trial at a time, so a group of 3 already places the trial among neighbours.
    if EXECUTOR == "fused":
        groups.append(("a group of 12", neighbours[1:6] + [target] + neighbours[6:12], 5))
    for name, configs, at in groups:
        other = run(configs)[at]
        assert other.config == target
        assert other.history == alone.history, (f"alone vs in {name}", alone.history, other.history)
        assert other.final == alone.final, (f"alone vs in {name}", alone.final, other.final)
    if EXECUTOR in OWN_CODE:  # a model: builder is the Keras executors' (check_user_model_trains)
        return
    cnn = user_model()  # a first layer that is a convolution, not a matrix product
    alone = run([cnn])[0]
    other = run([cnn.replace(learning_rate=0.001), cnn.replace(init="xavier"), cnn])[2]
    assert (other.history, other.final) == (alone.history, alone.final), ("user CNN alone vs in a group of 3",
                                                                          alone.history, other.history)


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
    from study.training.recipe import Recipe

    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, dataset_info(config.dataset))
    model.compile(optimizer=Recipe(config).optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(),
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
        assert a.history == g.history, ("alone vs in a group", a.history, g.history)
        for name in ("loss", "val_loss", "val_accuracy"):
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
        for metric in ("val_accuracy", *(["grad_norm/dense_0", "saturated/dense_1"] if LOGGED_PROBES else [])):
            history = mlflow.MlflowClient().get_metric_history(run_.info.run_id, metric)
            assert [m.step for m in history] == list(range(BASE.epochs)), (metric, history)


def user_model() -> TrialConfig:
    """A model of the user's own: a builder module with its own hyperparameters (a small CNN on digits)."""
    return TrialConfig(model="tests.executors.user_cnn:build", dataset="digits", epochs=3, batch_size=64,
                       batch_norm=True, dropout=0.2, optimizer="adam", learning_rate=0.003, backend=BACKEND,
                       executor=EXECUTOR, hparams={"filters": 8, "kernel_size": 3})


def check_user_model_trains() -> None:
    """A model of the user's own (a builder module, its own hyperparameters) on digits trains like the lesson's."""
    user = user_model()
    configs = [user.replace(seed=0), user.replace(seed=1)]
    results = run(configs)
    assert [r.status for r in results] == ["completed"] * 2, [r.status for r in results]
    assert all(0.3 < r.final["final_val_accuracy"] <= 1.0 for r in results), [r.final for r in results]  # chance: 0.1
    assert results[0].history != results[1].history, "each trial's own seed"
    probes = {name for name in results[0].history if name.startswith(("grad_norm/", "saturated/"))}
    assert probes == {"grad_norm/conv2d", "grad_norm/dense", "saturated/conv2d"}, probes  # relu after the conv
    if EXECUTOR_OBJ.bit_identical_to_keras:
        expected = plain_keras(configs[1])
        assert {k: results[1].history[k] for k in expected} == expected, (results[1].history, expected)


def check_probes_are_logged() -> None:
    """Gradient norms and saturated shares each epoch, finite; sigmoid with N(0, 1) init saturates, ReLU/He not."""
    configs = [BASE.replace(seed=0, activation="sigmoid", init="normal"), BASE.replace(seed=0, activation="relu",
                                                                                        init="he")]
    sigmoid, relu = run(configs)
    for result in (sigmoid, relu):
        for name in PROBES:
            values = result.history[name]
            assert len(values) == BASE.epochs and all(math.isfinite(v) for v in values), (name, values)
            assert all(v > 0 for v in values) if name.startswith("grad_norm/") else all(0 <= v <= 1 for v in values), \
                (name, values)
    for layer in ("dense_0", "dense_1"):
        assert sigmoid.history[f"saturated/{layer}"][0] > 0.2 > relu.history[f"saturated/{layer}"][0], \
            (layer, sigmoid.history, relu.history)


def check_probes_leave_training_unchanged() -> None:
    configs = group()
    probed = run(configs)
    plain = run(configs, settings=ExecutionSettings(steps_per_execution=8, save_model=False, probes=False))
    for a, b in zip(probed, plain):
        assert {k: a.history[k] for k in EPOCH_METRICS} == b.history, ("probes changed training", a.history, b.history)
        assert a.final == b.final, (a.final, b.final)


def check_probes_agree_with_keras_executor() -> None:
    """On JAX, an executor's probes equal the Keras executor's for the same trial after one epoch."""
    if BACKEND != "jax" or EXECUTOR == "keras":
        return
    configs = [c.replace(epochs=1) for c in (*group()[:2], BASE.replace(seed=0, activation="sigmoid", init="normal"))]
    results = run(configs)
    reference = executor_for("keras")
    workdir = Path(tempfile.mkdtemp(prefix="conformance-"))
    worst = [0.0]
    for config, result in zip(configs, results):
        batch = Batch(configs=[config.replace(executor="keras")], splits=[splits_for(config)], hooks=[TrialHooks()],
                      workdir=workdir)
        expected, = reference.run(batch, SETTINGS)
        for name in PROBES:
            a, b = result.history[name][0], expected.history[name][0]
            assert abs(a - b) <= PROBE_RTOL * max(abs(b), 1e-3), (config, name, a, b)
            worst[0] = max(worst[0], abs(a - b) / max(abs(b), 1e-3))
    print(f"probes vs the Keras executor: largest relative difference {worst[0]:.2e}", file=sys.stderr)


PROBE_RTOL = 1e-5


# ------------------------------------------------------------------ every declared factor acts, in every executor

# A small trial that overfits within its epochs (128 images), so plateau reductions and early stopping happen.
FACTOR_BASE = TrialConfig(train_subset=128, epochs=8, hidden_layers=2, units=16, optimizer="adam",
                          learning_rate=0.02, batch_size=32, seed=0, backend=BACKEND, executor=EXECUTOR)
# Each TrialConfig field at two levels, (a, b) as changes from FACTOR_BASE.
FACTOR_LEVELS: dict[str, tuple[dict, dict]] = {
    "dataset": ({}, {"dataset": "digits"}),
    "validation": ({}, {"validation": "test"}),
    "train_subset": ({}, {"train_subset": 256}),
    "epochs": ({}, {"epochs": 9}),
    "batch_size": ({}, {"batch_size": 64}),
    "hidden_layers": ({}, {"hidden_layers": 3}),
    "units": ({}, {"units": 24}),
    "activation": ({}, {"activation": "sigmoid"}),
    "init": ({}, {"init": "he"}),
    "batch_norm": ({}, {"batch_norm": True}),
    "dropout": ({}, {"dropout": 0.2}),
    "optimizer": ({}, {"optimizer": "sgd"}),
    "learning_rate": ({}, {"learning_rate": 0.01}),
    "schedule": ({}, {"schedule": "warmup_cosine_corrected"}),
    "warmup_epochs": ({"schedule": "warmup_cosine_corrected"}, {"schedule": "warmup_cosine_corrected",
                                                               "warmup_epochs": 1}),
    "plateau_factor": ({"schedule": "plateau", "plateau_patience": 0},
                       {"schedule": "plateau", "plateau_patience": 0, "plateau_factor": 0.5}),
    "plateau_patience": ({"schedule": "plateau", "plateau_patience": 0},
                         {"schedule": "plateau", "plateau_patience": 2}),
    "early_stopping_patience": ({}, {"early_stopping_patience": 1}),
    "seed": ({}, {"seed": 1}),
    "weight_decay": ({}, {"weight_decay": 0.01}),
    "label_smoothing": ({}, {"label_smoothing": 0.1}),
}
# Fields that are not levels of one trial's training here, and where they are checked instead.
NOT_LEVELS = {"backend": "one backend per suite run", "executor": "the executor under test",
              "model": "check_user_model_trains", "hparams": "check_user_model_trains",
              "train": "the own-code executors' suite (OWN_CODE)", "command": "the own-code executors' suite (OWN_CODE)"}
# How far an executor may be from the reference (the Keras executor on this backend) after FACTOR_BASE's epochs,
# relative to max(1, |value|): losses to float rounding; accuracy to 5 of 10,000 validation predictions, as
# rounding flips an example at the decision boundary (batch norm, fused vs Keras on JAX: 1 in 10,000). The
# learning rates and the epochs run (the recipe's policy) must be equal.
FACTOR_RTOL = {"loss": 1e-4, "val_loss": 1e-4, "val_accuracy": 5e-4}


def check_every_factor_acts() -> None:
    """Every declared factor changes what this executor computes (its two levels train differently), and the
    executor agrees with the reference (the Keras executor) within FACTOR_RTOL at the second level; a factor
    the executor declares inert (study.training.executors.registry) is refused in one line instead. A factor
    declared in TrialConfig without a level here fails the suite: a new factor is checked in every executor
    from the start."""
    from study.config import FACTORS
    from study.core.errors import InputError
    from study.training.executors.registry import EXECUTORS
    from study.training.recipe import Recipe

    missing = set(FACTORS) - set(FACTOR_LEVELS) - set(NOT_LEVELS)
    assert not missing, f"no levels for factor(s) {sorted(missing)}: add them to FACTOR_LEVELS"
    inert = set(EXECUTORS[EXECUTOR].inert)
    assert inert <= set(FACTOR_LEVELS), ("inert factors that are not factors", inert - set(FACTOR_LEVELS))
    problems = []
    for name in sorted(inert):
        config = FACTOR_BASE.replace(**FACTOR_LEVELS[name][1])
        try:
            Recipe(config)
            problems.append(f"{name}: declared inert for {EXECUTOR} but not refused")
        except InputError as exc:
            if name not in str(exc) or "\n" in str(exc):
                problems.append(f"{name}: refused without one line naming it: {exc}")
    only = set(filter(None, os.environ.get("CONFORMANCE_FACTORS", "").split(",")))  # a child run of a few factors
    pairs = {name: tuple(FACTOR_BASE.replace(**level) for level in levels)
             for name, levels in FACTOR_LEVELS.items() if name not in inert and (not only or name in only)}
    own_bits = own_dropout_bits()
    unique = list(dict.fromkeys(c for pair in pairs.values() for c in pair))
    results = dict(zip(unique, run(unique)))
    reference = None
    if EXECUTOR != "keras":  # the reference executor on this backend, on the second levels
        seconds = list(dict.fromkeys(b.replace(executor="keras") for _, b in pairs.values()))
        reference = dict(zip(seconds, executor_for("keras").run(
            Batch(configs=seconds, splits=[splits_for(c) for c in seconds], hooks=[TrialHooks() for _ in seconds],
                  workdir=Path(tempfile.mkdtemp(prefix="conformance-"))), SETTINGS)))
    worst = dict.fromkeys(FACTOR_RTOL, 0.0)
    for name, (a, b) in pairs.items():
        ra, rb = results[a], results[b]
        if ra.status != "completed" or rb.status != "completed":
            problems.append(f"{name}: {ra.status} / {rb.status}")
            continue
        if (ra.history["loss"], ra.history["val_loss"]) == (rb.history["loss"], rb.history["val_loss"]):
            problems.append(f"{name}: both levels trained identically (the factor is ignored)")
        if reference is None:
            continue
        expected = reference[b.replace(executor="keras")]
        if (rb.history["learning_rate"], rb.epochs_run) != (expected.history["learning_rate"], expected.epochs_run):
            problems.append(f"{name}: learning rates / epochs differ from the Keras executor's: "
                            f"{rb.history['learning_rate']} vs {expected.history['learning_rate']}")
            continue
        if name in own_bits:  # other masks: compared below with the Keras executor's bits instead
            continue
        for metric, rtol in FACTOR_RTOL.items():
            for x, y in zip(expected.history[metric], rb.history[metric]):
                worst[metric] = max(worst[metric], abs(x - y) / max(1.0, abs(x)))
                if abs(x - y) > rtol * max(1.0, abs(x)):
                    problems.append(f"{name}: {metric} {y} vs the Keras executor's {x}")
                    break
    if own_bits:
        problems += dropout_with_keras_bits_agrees(own_bits)
    if reference is not None:
        print("factors vs the Keras executor, largest relative difference: "
              + ", ".join(f"{m} {v:.2e}" for m, v in worst.items()), file=sys.stderr)
    assert not problems, "; ".join(problems)


def own_dropout_bits() -> set[str]:
    """Factors whose masks this executor draws from its own generator: the fused step on JAX takes its dropout
    bits from XLA's RngBitGenerator (study.training.fused.dropout_bits), so its numbers differ from Keras' by
    other masks, not by a bug; STUDY_FUSED_DROPOUT=keras-threefry draws Keras' bits to compare exactly."""
    if EXECUTOR != "fused":
        return set()
    from study.training.fused.dropout_bits import GENERATORS, dropout_generator

    return {"dropout"} if dropout_generator() != GENERATORS[1] else set()


def dropout_with_keras_bits_agrees(factors: set[str]) -> list[str]:
    """The factors drawing their own masks, rerun in a child process with Keras' generator (compiled programs
    keep the generator they were traced with), must agree with the Keras executor within FACTOR_RTOL."""
    import subprocess

    child = subprocess.run([sys.executable, __file__, EXECUTOR, BACKEND, DATA_DIR, "check_every_factor_acts"],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "STUDY_FUSED_DROPOUT": "keras-threefry",
                                "CONFORMANCE_FACTORS": ",".join(sorted(factors))})
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    outcome = json.loads(lines[-1]) if lines else {"check_every_factor_acts": child.stderr[-1500:]}
    verdict = outcome.get("check_every_factor_acts", "missing")
    return [] if verdict == "ok" else [f"{sorted(factors)} with Keras' dropout bits: {verdict}"]


CHECKS = [check_results_complete_and_in_order, check_hooks_see_every_epoch, check_should_stop_ends_one_trial,
          check_nan_is_diverged_and_contained, check_group_independent, check_stop_event_interrupts, check_kept_epoch_is_tested_and_saved,
          check_same_batch_same_numbers, check_agrees_with_keras, check_one_mlflow_run_per_trial,
          check_user_model_trains, check_probes_are_logged, check_probes_leave_training_unchanged,
          check_probes_agree_with_keras_executor, check_every_factor_acts]

if __name__ == "__main__":
    outcome = {}
    for check in CHECKS:
        if sys.argv[4:] and check.__name__ not in sys.argv[4:]:
            continue
        if check.__name__ in NOT_APPLICABLE.get(EXECUTOR, {}):
            outcome[check.__name__] = f"n/a: {NOT_APPLICABLE[EXECUTOR][check.__name__]}"
            continue
        started = time.perf_counter()
        try:
            check()
            outcome[check.__name__] = "ok"
        except Exception as exc:  # noqa: BLE001 - every check's failure is reported, then the suite fails
            outcome[check.__name__] = f"{type(exc).__name__}: {str(exc)[:800]}\n{traceback.format_exc()[-1500:]}"
        print(f"{check.__name__}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(json.dumps(outcome))
    sys.exit(0 if all(v == "ok" or v.startswith("n/a: ") for v in outcome.values()) else 1)
