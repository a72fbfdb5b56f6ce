"""The model builder per factor, and the schedules' exact values."""

from __future__ import annotations

import math

import pytest

from study.training.backend import select_backend

select_backend("tensorflow")

import keras  # noqa: E402

from study.config import TrialConfig  # noqa: E402
from study.training.lesson_mlp import build_model, hidden_initializer  # noqa: E402
from study.training.recipe import Recipe  # noqa: E402
from study.training.schedules import corrected_warmup_cosine, lesson_warmup_cosine, planned_learning_rates  # noqa: E402


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_lesson_first_model_has_28618_params_and_plain_structure():
    model = build_model(TrialConfig())
    assert model.count_params() == 28_618
    assert layer_types(model) == ["InputLayer"] + ["Dense", "Activation"] * 4 + ["Dense"]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.layers[-1].units == 10


def test_bigger_model_parameter_count():
    # 784*128+128 + 3*(128*128+128) + 128*10+10
    assert build_model(TrialConfig(units=128)).count_params() == 100_480 + 3 * 16_512 + 1_290


@pytest.mark.parametrize("init, cls, extra", [
    ("normal", keras.initializers.RandomNormal, {"stddev": 1.0, "mean": 0.0}),
    ("xavier", keras.initializers.GlorotUniform, {}),
    ("he", keras.initializers.HeNormal, {}),
])
def test_hidden_initializers_are_the_lessons(init, cls, extra):
    model = build_model(TrialConfig(init=init))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer in dense[:-1]:
        assert isinstance(layer.kernel_initializer, cls)
        for key, value in extra.items():
            assert layer.kernel_initializer.get_config()[key] == value
    assert isinstance(dense[-1].kernel_initializer, keras.initializers.GlorotUniform)


def test_normal_init_is_standard_normal_not_keras_default():
    weights = keras.ops.convert_to_numpy(hidden_initializer("normal", seed=1)((256, 256)))
    assert abs(weights.std() - 1.0) < 0.02


def test_batch_norm_sits_between_dense_and_activation_and_dropout_after():
    model = build_model(TrialConfig(batch_norm=True, dropout=0.2, activation="sigmoid"))
    assert layer_types(model) == ["InputLayer"] + ["Dense", "BatchNormalization", "Activation", "Dropout"] * 4 + [
        "Dense"]
    assert all(layer.rate == 0.2 for layer in model.layers if isinstance(layer, keras.layers.Dropout))
    assert all(layer.activation.__name__ == "sigmoid" for layer in model.layers
               if isinstance(layer, keras.layers.Activation))
    # BN adds 4 params per unit (gamma, beta, moving mean, moving variance)
    assert model.count_params() == 28_618 + 4 * 32 * 4


@pytest.mark.parametrize("name, cls, lr", [("sgd", keras.optimizers.SGD, 0.01), ("adam", keras.optimizers.Adam, 0.001)])
def test_optimizers(name, cls, lr):
    optimizer = Recipe(TrialConfig(optimizer=name, learning_rate=lr)).optimizer()
    assert isinstance(optimizer, cls)
    assert math.isclose(float(optimizer.learning_rate), lr, rel_tol=1e-6)


def test_lesson_warmup_cosine_values():
    # max lr 0.01, 3 warm-up epochs, 30 epochs: the lesson's formula, epoch counted from 0
    values = [lesson_warmup_cosine(e, 0.01, 3, 30) for e in range(30)]
    assert values[0] == 0.0  # the lesson's quirk, kept on purpose
    assert values[1] == pytest.approx(0.01 / 3)
    assert values[2] == pytest.approx(0.02 / 3)
    assert values[3] == pytest.approx(0.01)  # peak at the end of warm-up
    assert values[16] == pytest.approx(0.5 * 0.01 * (1 + math.cos(math.pi * 13 / 27)))
    assert values[29] == pytest.approx(0.5 * 0.01 * (1 + math.cos(math.pi * 26 / 27)))
    assert all(a >= b for a, b in zip(values[3:], values[4:]))  # decays monotonically


def test_corrected_warmup_never_trains_at_zero():
    values = [corrected_warmup_cosine(e, 0.01, 3, 30) for e in range(30)]
    assert values[0] == pytest.approx(0.0025) and min(values) > 0
    assert values[3:] == [lesson_warmup_cosine(e, 0.01, 3, 30) for e in range(3, 30)]


def test_planned_learning_rates_match_the_schedule_functions():
    config = TrialConfig(schedule="warmup_cosine", epochs=5, warmup_epochs=2, learning_rate=0.01)
    assert planned_learning_rates(config) == [lesson_warmup_cosine(e, 0.01, 2, 5) for e in range(5)]
    assert planned_learning_rates(TrialConfig()) == [0.01] * 5
    assert planned_learning_rates(TrialConfig(schedule="plateau")) is None
