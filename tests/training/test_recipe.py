"""The trial's recipe (study.training.recipe): its policy decides as Keras' callbacks do, its loss is the
documented one, and a factor an executor declares inert is refused in one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from study.training.backend import select_backend

select_backend("tensorflow")

import keras  # noqa: E402

from study.config import TrialConfig  # noqa: E402
from study.core.errors import InputError, SpecError  # noqa: E402
from study.training.executors import registry  # noqa: E402
from study.training.lesson_mlp import build_model  # noqa: E402
from study.training.model_check import check_models  # noqa: E402
from study.training.recipe import Recipe  # noqa: E402


def test_plateau_policy_cuts_lr_by_factor_after_patience_as_keras_does():
    """The recipe's plateau decision and Keras' ReduceLROnPlateau, fed the same val_losses, give the same rates."""
    config = TrialConfig(schedule="plateau", plateau_factor=0.1, plateau_patience=2, learning_rate=0.01)
    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=2, verbose=0)
    model = build_model(config)
    model.compile(optimizer=Recipe(config).optimizer(), loss="sparse_categorical_crossentropy")
    callback.set_model(model)
    callback.on_train_begin()
    policy = Recipe(config).policy()
    lrs, ours = [], []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.89995, 0.8]):
        ours.append(policy.rate_for_epoch(epoch))
        policy.end_epoch(epoch, val_loss)
        lrs.append(float(model.optimizer.learning_rate))
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
    # improves at epochs 0-1, then 2 epochs without improvement -> x0.1, 2 more -> x0.1 again; 0.89995 is
    # within min_delta (1e-4) of the best, so not an improvement either
    assert ours == lrs
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_early_stopping_policy_stops_as_keras_does():
    config = TrialConfig(early_stopping_patience=2)
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)
    model = build_model(config)
    callback.set_model(model)
    callback.on_train_begin()
    policy = Recipe(config).policy()
    for epoch, val_loss in enumerate([1.0, 0.9, 0.9, 0.95, 0.8]):
        policy.end_epoch(epoch, val_loss)
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
        assert policy.stopped == getattr(model, "stop_training", False), epoch
        if policy.stopped:
            break
    assert epoch == 3  # 0.9 again is no improvement (min_delta 0): the second epoch without one stops


def test_label_smoothing_is_the_smoothed_one_hot_crossentropy():
    """The recipe's loss at label_smoothing e equals Keras' CategoricalCrossentropy(label_smoothing=e) on one-hot
    labels, and at 0 is Keras' sparse categorical cross-entropy (what the lesson trains with)."""
    y = np.array([0, 3, 9, 3])
    probs = keras.ops.softmax(keras.random.normal((4, 10), seed=1))
    one_hot = keras.ops.one_hot(y, 10)
    smoothed = Recipe(TrialConfig(label_smoothing=0.1))
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, probs)
    assert float(keras.ops.mean(smoothed.loss(y, probs))) == pytest.approx(float(expected), rel=1e-6)
    assert float(smoothed.keras_loss()(y, probs)) == pytest.approx(float(expected), rel=1e-6)
    plain = Recipe(TrialConfig())
    assert isinstance(plain.keras_loss(), keras.losses.SparseCategoricalCrossentropy)
    assert np.array_equal(keras.ops.convert_to_numpy(plain.loss(y, probs)),
                          keras.ops.convert_to_numpy(keras.ops.sparse_categorical_crossentropy(y, probs)))
    assert float(keras.ops.mean(smoothed.loss(y, probs))) > float(keras.ops.mean(plain.loss(y, probs)))


def test_a_factor_an_executor_declares_inert_is_refused_in_one_line(monkeypatch):
    entry = dataclasses.replace(registry.EXECUTORS["keras"], inert=("label_smoothing",))
    monkeypatch.setitem(registry.EXECUTORS, "keras", entry)
    smoothed = TrialConfig(label_smoothing=0.1)
    message = ("label_smoothing=0.1: executor keras does not implement label_smoothing (declared inert); use "
               "another executor or label_smoothing: 0.0")
    assert registry.inert_problem(smoothed) == message
    assert registry.inert_problem(TrialConfig()) is None  # at its default the factor is not set
    with pytest.raises(InputError, match="declared inert"):
        Recipe(smoothed)
    with pytest.raises(SpecError) as raised:
        check_models([TrialConfig(), smoothed], "study.yaml")
    assert "\n" not in str(raised.value) and "executor" in str(raised.value) and message in str(raised.value)


def test_a_model_compiled_with_a_smoothed_loss_saves_and_loads(tmp_path):
    """A kept model of a label-smoothing trial is saved with its loss and loads back with it (registered)."""
    recipe = Recipe(TrialConfig(label_smoothing=0.2))
    model = build_model(recipe.config)
    model.compile(optimizer=recipe.optimizer(), loss=recipe.keras_loss(), metrics=["accuracy"])
    x, y = np.zeros((4, 784), dtype="float32"), np.array([1, 2, 3, 4])
    expected = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "best_model.keras")
    loaded = keras.models.load_model(tmp_path / "best_model.keras")
    assert loaded.loss.label_smoothing == 0.2
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(expected)
