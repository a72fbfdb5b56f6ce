"""A user's model builder: resolved, called with the trial's hyperparameters, checked before anything is created."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from study.training.backend import select_backend

select_backend("tensorflow")

import keras  # noqa: E402

from study.config import TrialConfig  # noqa: E402
from study.core.errors import SpecError  # noqa: E402
from study.data.registry import dataset_info  # noqa: E402
from study.training import model_check  # noqa: E402
from study.training.builders import Hyperparameters, ModelError, shape_fits  # noqa: E402
from study.training.models import build_model, model_inputs  # noqa: E402

BUILDERS = '''
import keras
from keras import layers

def build(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(hp.filters, 3, padding="same", activation=hp.activation)(inputs)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))

def flat(hp, input_shape, num_classes):
    inputs = keras.Input(shape=(64,))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(inputs))

def a_list(hp, input_shape, num_classes):
    return [layers.Dense(num_classes)]

def logits(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, layers.Dense(num_classes)(layers.Flatten()(inputs)))

def nine(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, layers.Dense(9, activation="softmax")(layers.Flatten()(inputs)))

def wrong_input(hp, input_shape, num_classes):
    inputs = keras.Input(shape=(28, 28, 1))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(layers.Flatten()(inputs)))

def typo(hp, input_shape, num_classes):
    return hp.filtres

def big_kernel(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(4, hp.filters)(inputs)  # "valid": a kernel larger than the image fails
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(layers.Flatten()(x)))

not_a_function = 3
'''


@pytest.fixture()
def module(tmp_path, monkeypatch):
    (tmp_path / "user_builders_t.py").write_text(textwrap.dedent(BUILDERS))
    (tmp_path / "broken_builders_t.py").write_text("import keras\nraise RuntimeError('half-written module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model_check._CHECKED.clear()
    return "user_builders_t"


def config(reference: str, **hparams) -> TrialConfig:
    return TrialConfig(model=reference, dataset="digits", hparams={"filters": 4, **hparams})


def test_builder_gets_fields_and_hyperparameters_and_data_shape(module):
    model = build_model(config(f"{module}:build", filters=6).replace(activation="sigmoid"), dataset_info("digits"))
    assert isinstance(model, keras.Model) and model.input_shape == (None, 8, 8, 1)
    conv = model.layers[1]
    assert conv.filters == 6 and conv.activation.__name__ == "sigmoid"
    assert model.output_shape == (None, 10)
    assert model_check.check_models([config(f"{module}:build", filters=f) for f in (4, 8, 4)], "s.yaml") == 2
    assert model_check.check_models([config(f"{module}:build", filters=8)], "s.yaml") == 0  # checked before


def test_inputs_are_reshaped_only_when_the_model_asks():
    x = np.zeros((3, 8, 8, 1), dtype=np.float32)
    flat = build_model(TrialConfig(dataset="digits", hidden_layers=1, units=4), dataset_info("digits"))
    assert model_inputs(flat, x).shape == (3, 64)
    assert shape_fits((64,), (8, 8, 1)) and shape_fits((None, None, 1), (8, 8, 1))
    assert not shape_fits((28, 28, 1), (8, 8, 1)) and not shape_fits((None, 1), (8, 8, 1))


@pytest.mark.parametrize("function, words", [
    ("a_list", ["model: user_builders_t:a_list returned list, not a keras.Model"]),
    ("logits", ["not class probabilities", "softmax"]),
    ("nine", ["outputs 9 value(s) per example, but digits has 10 classes"]),
    ("wrong_input", ["takes inputs of shape (28, 28, 1), but digits's examples have shape (8, 8, 1)"]),
    ("typo", ["raised AttributeError", "hp has no 'filtres'", "filters"]),
    ("nothere", ["module 'user_builders_t'", "has no 'nothere'"]),
    ("not_a_function", ["is a int, not a function"]),
])
def test_a_builder_that_cannot_train_is_an_input_error(module, function, words):
    with pytest.raises(SpecError) as err:
        model_check.check_models([config(f"{module}:{function}")], "s.yaml")
    message = str(err.value)
    assert message.startswith("s.yaml: model: "), message
    for word in words:
        assert word in message, message


def test_a_failing_structure_is_named_and_import_errors_say_where_to_look(module):
    with pytest.raises(SpecError, match=r"raised ValueError.*\(built for filters=9\)"):
        model_check.check_models([config(f"{module}:big_kernel", filters=f) for f in (3, 9)], "s.yaml")
    with pytest.raises(SpecError, match="cannot import 'no_such_module_t'.*PYTHONPATH"):
        model_check.check_models([config("no_such_module_t:build")], "s.yaml")
    with pytest.raises(SpecError, match="importing 'broken_builders_t' failed: RuntimeError: half-written module"):
        model_check.check_models([config("broken_builders_t:build")], "s.yaml")
    with pytest.raises(ModelError):  # at training time the same problem fails the trial, with the same words
        build_model(config(f"{module}:a_list"), dataset_info("digits"))


def test_the_lesson_model_is_never_checked_or_imported():
    assert model_check.check_models([TrialConfig(), TrialConfig(dataset="digits")], "s.yaml") == 0


def test_hyperparameters_read_by_attribute_or_key():
    hp = Hyperparameters({"filters": 8, "dropout": 0.1})
    assert hp.filters == hp["filters"] == 8 and dict(hp) == {"filters": 8, "dropout": 0.1} and len(hp) == 2
    with pytest.raises(AttributeError, match="hp has no 'filtres'; it has: dropout, filters"):
        hp.filtres  # noqa: B018


def test_a_model_the_fused_executor_cannot_train_is_refused_before_anything_runs(tmp_path):
    """A builder whose model has its own train_step would silently lose it in the fused program: exit 2."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    (tmp_path / "own_step.py").write_text(
        "import keras\n"
        "class Own(keras.Model):\n"
        "    def train_step(self, *args, **kwargs):\n"
        "        return super().train_step(*args, **kwargs)\n"
        "def build(hp, input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Flatten()(inputs)\n"
        "    return Own(inputs, keras.layers.Dense(num_classes, activation='softmax')(x))\n")
    (tmp_path / "spec.yaml").write_text("name: own\nmodel: own_step:build\ndataset: digits\nbackend: jax\n"
                                        "executor: fused\nepochs: 1\nseeds: [0]\n")
    out = subprocess.run([sys.executable, "-m", "study", "run", "spec.yaml", "--no-report"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "executor: fused cannot train own_step:build" in out.stderr and "overrides train_step" in out.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
