"""Your own training code as a trial, without a process or a store: the function executor and its reporter,
what returned metrics become, command templates, and `build(hp)` builders (Keras Tuner's convention)."""

from __future__ import annotations

import math
import threading

import pytest

from study.config import TrialConfig
from study.config.user_code import placeholders, render_command, unknown_placeholders
from study.core.errors import Interrupted
from study.data.splits import SplitCache
from study.training.builders import TunerHyperparameters, takes_hp_only
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
from study.training.executors.function_executor import FunctionExecutor
from study.training.user_results import ResultError, final_metrics, is_final_only
from tests.training import own_code

CONFIG = TrialConfig(dataset="digits", epochs=3, executor="function", train="tests.training.own_code:train",
                     hparams={"alpha": 0.25})


def run(configs, hooks=None, stop=None, tmp_path=None):
    cache = SplitCache()
    batch = Batch(configs=configs, splits=[cache.get(c.dataset, c.validation, c.train_subset) for c in configs],
                  hooks=hooks or [TrialHooks() for _ in configs], workdir=tmp_path, stop=stop or threading.Event())
    return FunctionExecutor().run(batch, ExecutionSettings())


def test_the_function_gets_the_config_by_attribute_and_key_and_the_data(tmp_path):
    own_code.SEEN.clear()
    logged = []
    result, = run([CONFIG.replace(seed=4)], [TrialHooks(on_epoch_end=lambda e, logs: logged.append((e, logs)))],
                  tmp_path=tmp_path)
    assert own_code.SEEN == [(4, 0.25, 0.01, 1197)]  # digits: 1,497 training images less the 300 held out
    assert [e for e, _ in logged] == [0, 1, 2] and logged[1][1] == {"loss": 0.5, "val_accuracy": 0.6}
    assert result.status == "completed" and result.epochs_run == 3 and not result.stopped_by_hook
    assert result.final == {"final_val_accuracy": 0.75, "final_val_loss": 0.7, "test_accuracy": 0.6, "own_metric": 3.0,
                            "best_val_accuracy": 0.75, "last_loss": 1 / 3, "last_val_accuracy": 0.7,
                            "last_val_loss": 0.7, "epochs_run": 3.0}


def test_a_hook_that_says_stop_prunes_only_its_trial(tmp_path):
    hooks = [TrialHooks(should_stop=lambda e, logs: True), TrialHooks()]
    pruned, whole = run([CONFIG, CONFIG.replace(seed=1)], hooks, tmp_path=tmp_path)
    assert pruned.stopped_by_hook and pruned.epochs_run == 1
    assert not whole.stopped_by_hook and whole.epochs_run == 3


def test_a_stop_request_interrupts_the_trial_whatever_it_returns(tmp_path):
    stop = threading.Event()
    with pytest.raises(Interrupted):
        run([CONFIG], [TrialHooks(on_epoch_end=lambda e, logs: stop.set())], stop=stop, tmp_path=tmp_path)


def test_a_nan_loss_is_diverged_with_the_finite_metrics_kept(tmp_path):
    result, = run([CONFIG.replace(train="tests.training.own_code:nan_loss")], tmp_path=tmp_path)
    assert result.status == "diverged" and result.final["final_val_accuracy"] == 0.1
    assert all(math.isfinite(v) for v in result.final.values()) and "final_loss" not in result.final


@pytest.mark.parametrize("function, words", [
    ("returns_a_list", "returned list; it must return a dict of final metrics"),
    ("forgets_val_accuracy", "reported no val_accuracy (the study's metric) among its final metrics (accuracy)"),
])
def test_unusable_metrics_fail_the_trial_saying_why(function, words, tmp_path):
    with pytest.raises(ResultError, match=words.replace("(", r"\(").replace(")", r"\)")):
        run([CONFIG.replace(train=f"tests.training.own_code:{function}")], tmp_path=tmp_path)


def test_final_metrics_map_onto_the_trial_table():
    final, diverged = final_metrics({"val_accuracy": 0.9, "final_val_accuracy": 0.95, "accuracy": 0.99, "loss": 0.1,
                                     "test_accuracy": 0.93, "params": 10.0}, {"val_accuracy": [0.5, 0.97]}, "f")
    assert not diverged
    assert final == {"final_val_accuracy": 0.95, "final_accuracy": 0.99, "final_loss": 0.1, "test_accuracy": 0.93,
                     "params": 10.0, "best_val_accuracy": 0.97, "last_val_accuracy": 0.97, "last_accuracy": 0.99,
                     "last_loss": 0.1, "epochs_run": 2.0}
    with pytest.raises(ResultError, match="'val_accuracy' is 'high'"):
        from study.training.user_results import metric_values

        metric_values({"val_accuracy": "high"}, "f")
    assert is_final_only("test_accuracy") and is_final_only("final_val_loss") and not is_final_only("val_loss")


def test_a_command_template_is_words_with_config_placeholders():
    command = "python train.py --lr {learning_rate} --name 'run {seed}' --alpha={alpha:g}"
    assert placeholders(command) == ["learning_rate", "seed", "alpha"]
    assert render_command(command, {"learning_rate": 0.01, "seed": 3, "alpha": 1e-4}) == \
        ["python", "train.py", "--lr", "0.01", "--name", "run 3", "--alpha=0.0001"]
    assert unknown_placeholders(command, ["seed", "alpha"]) == ["learning_rate"]
    for bad in ("python t.py --x {a.b}", "python 't.py"):
        with pytest.raises(ValueError):
            placeholders(bad)


def build_hp_only(hp):
    return hp


def build_three(hp, input_shape, num_classes):
    return hp


def test_a_builder_of_hp_alone_follows_keras_tuners_convention():
    assert takes_hp_only(build_hp_only) and not takes_hp_only(build_three)
    hp = TunerHyperparameters({"units": 32, "filters": 8, "batch_norm": True}, (8, 8, 1), 10)
    assert (hp.input_shape, hp.num_classes, hp["num_classes"]) == ((8, 8, 1), 10, 10)
    assert hp.Int("filters", 4, 64, step=4) == 8 and hp.Int("units", 8, 512) == 32  # the trial's values
    assert hp.Int("depth", 1, 4) == 1 and hp.Float("rate", 0.1, 0.5, default=0.2) == 0.2  # Keras Tuner's defaults
    assert hp.Choice("kernel", [3, 5]) == 3 and hp.Boolean("batch_norm") is True and hp.Fixed("x", 7) == 7
    with hp.conditional_scope("batch_norm", [True]):
        assert hp.Boolean("residual", default=True)
