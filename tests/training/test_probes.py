"""The probes compute what they claim (study.training.probes): gradient norms against finite differences of an
independent NumPy forward pass, saturated shares on planted weights, names by layer for any Keras model.
(Both executors and both backends log them: tests/executors/conformance.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from study.training.backend import select_backend

select_backend("tensorflow")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from study.training.probes import Probe  # noqa: E402


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _loss(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean crossentropy of Dense -> sigmoid -> Dense -> softmax, in float64."""
    w0, b0, w1, b1 = weights
    logits = _sigmoid(x @ w0 + b0) @ w1 + b1
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def test_gradient_norms_match_finite_differences():
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(5,))
    hidden = layers.Activation("sigmoid", name="act")(layers.Dense(4, name="dense_0")(inputs))
    model = keras.Model(inputs, layers.Dense(3, activation="softmax", name="softmax")(hidden))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.integers(0, 3, 64)
    probe = Probe(model)
    assert probe.names == ["grad_norm/dense_0", "grad_norm/softmax", "saturated/dense_0"]
    values = probe.values(x, y)
    weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    for name, at in (("grad_norm/dense_0", 0), ("grad_norm/softmax", 2)):
        grad = np.zeros_like(weights[at])
        for index in np.ndindex(grad.shape):
            up, down = [w.copy() for w in weights], [w.copy() for w in weights]
            up[at][index] += 1e-5
            down[at][index] -= 1e-5
            grad[index] = (_loss(up, x, y) - _loss(down, x, y)) / 2e-5
        assert values[name] == pytest.approx(np.linalg.norm(grad), rel=1e-4), name


def test_saturated_shares_follow_their_definitions():
    """sigmoid: activations outside [0.05, 0.95]; tanh: |a| > 0.9; relu: units zero on every example."""
    inputs = keras.Input(shape=(2,))
    a = layers.Dense(2, activation="sigmoid", name="a")(inputs)
    b = layers.Dense(2, activation="relu", name="b")(a)
    c = layers.Activation("tanh")(layers.Dense(4, name="c")(b))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(c))
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype="float32")
    # a: unit 0 = sigmoid(10 x0): saturated unless x0 = 0 (3 of 4 rows); unit 1 = sigmoid(0) = 0.5: never
    model.get_layer("a").set_weights([np.array([[10.0, 0.0], [0.0, 0.0]]), np.zeros(2)])
    # b: unit 0 = relu(-1): dead on every row; unit 1 = relu(1): alive
    model.get_layer("b").set_weights([np.zeros((2, 2)), np.array([-1.0, 1.0])])
    # c: tanh of (3 units at 0 + 1 unit at 5) per row: 1 of 4 saturated (unit 1's input is relu's 1)
    model.get_layer("c").set_weights([np.array([[0.0] * 4, [0.0, 5.0, 0.0, 0.0]]), np.zeros(4)])
    values = Probe(model).values(x, np.zeros(4, dtype="int64"))
    assert {k: v for k, v in values.items() if k.startswith("saturated/")} == \
        pytest.approx({"saturated/a": 3 / 8, "saturated/b": 0.5, "saturated/c": 0.25})
    assert [k for k in values if k.startswith("grad_norm/")] == ["grad_norm/a", "grad_norm/b", "grad_norm/c",
                                                                  "grad_norm/out"]


def test_a_subclassed_model_still_gets_its_gradient_norms():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(3, activation="sigmoid", name="hidden")
            self.out = layers.Dense(2, activation="softmax", name="out")

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    model = Net()
    model(np.zeros((1, 4), dtype="float32"))
    values = Probe(model).values(np.ones((8, 4), dtype="float32"), np.zeros(8, dtype="int64"))
    assert set(values) >= {"grad_norm/hidden", "grad_norm/out"} and all(np.isfinite(list(values.values())))
