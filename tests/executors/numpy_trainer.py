"""The conformance suite's user code: a one-hidden-layer MLP in plain NumPy, no Keras and no framework inside.

What a user's own training code is to the `function` and `command` executors: it reads the trial's
config (units, activation, init, learning_rate and its schedule, batch_size, epochs, seed), seeds
itself from `seed`, reports loss, accuracy, val_loss, val_accuracy and learning_rate each epoch
through `report(step, logs)` (which returns whether to stop), keeps the epoch with the lowest
val_loss and returns its metrics, tested, as the final metrics. A loss that overflows ends the
trial after that epoch (the executor then records it diverged).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def _init(rng: np.random.Generator, kind: str, fan_in: int, fan_out: int) -> np.ndarray:
    if kind == "normal":
        return rng.normal(0.0, 1.0, (fan_in, fan_out))
    if kind == "he":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_in, fan_out))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out))


def _rates(values: Mapping[str, Any]) -> list[float]:
    lr, warmup, epochs = values["learning_rate"], values["warmup_epochs"], values["epochs"]
    rates = []
    for e in range(epochs):
        if values["schedule"] == "constant" or values["schedule"] == "plateau":
            rates.append(lr)
            continue
        if e < warmup:
            rates.append((e + 1) / (warmup + 1) * lr if values["schedule"].endswith("corrected") else e / warmup * lr)
        else:
            rates.append(0.5 * lr * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup))))
    return rates


class MLP:
    def __init__(self, values: Mapping[str, Any], inputs: int, classes: int) -> None:
        rng = np.random.default_rng(values["seed"])
        self.w1 = _init(rng, values["init"], inputs, values["units"]).astype(np.float32)
        self.b1 = np.zeros(values["units"], np.float32)
        self.w2 = _init(rng, "xavier", values["units"], classes).astype(np.float32)
        self.b2 = np.zeros(classes, np.float32)
        self.sigmoid = values["activation"] == "sigmoid"

    def params(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = x @ self.w1 + self.b1
        h = 1 / (1 + np.exp(-z)) if self.sigmoid else np.maximum(z, 0)
        logits = h @ self.w2 + self.b2
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(axis=1, keepdims=True)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> None:
        h, p = self.forward(x)
        grad = p.copy()
        grad[np.arange(len(y)), y] -= 1
        grad /= np.float32(len(y))
        lr = np.float32(lr)
        dh = grad @ self.w2.T * (h * (1 - h) if self.sigmoid else (h > 0))
        self.w2 -= lr * h.T @ grad
        self.b2 -= lr * grad.sum(axis=0)
        self.w1 -= lr * x.T @ dh
        self.b1 -= lr * dh.sum(axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        _, p = self.forward(x)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y])))  # float32, as Keras: a huge step overflows
        return loss, float(np.mean(p.argmax(axis=1) == y))


def fit(values: Mapping[str, Any], data: Any, report: Callable[[int, dict[str, float]], bool]) -> dict[str, float]:
    """Train on `data` (x_train, y_train, x_val, y_val, x_test, y_test); return the kept epoch's metrics."""
    flat = {name: getattr(data, name).reshape(len(getattr(data, name)), -1).astype(np.float32)
            for name in ("x_train", "x_val", "x_test")}
    y_train = data.y_train
    model = MLP(values, flat["x_train"].shape[1], int(max(data.y_train.max(), data.y_test.max())) + 1)
    order_rng = np.random.default_rng(values["seed"] + 1)
    kept: dict[str, float] = {}
    best_val_loss = math.inf
    with np.errstate(all="ignore"):
        for epoch, lr in enumerate(_rates(values)):
            order = order_rng.permutation(len(y_train))
            for start in range(0, len(order), values["batch_size"]):
                rows = order[start:start + values["batch_size"]]
                model.step(flat["x_train"][rows], y_train[rows], lr)
            loss, accuracy = model.evaluate(flat["x_train"], y_train)
            val_loss, val_accuracy = model.evaluate(flat["x_val"], data.y_val)
            logs = {"loss": loss, "accuracy": accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy,
                    "learning_rate": lr}
            if math.isfinite(loss) and math.isfinite(val_loss) and val_loss < best_val_loss:
                best_val_loss = val_loss
                test_loss, test_accuracy = model.evaluate(flat["x_test"], data.y_test)
                kept = {**{k: v for k, v in logs.items() if k != "learning_rate"}, "test_loss": test_loss,
                        "test_accuracy": test_accuracy, "best_epoch": float(epoch)}
            if report(epoch, logs) or not math.isfinite(loss):
                break
    kept["params"] = float(sum(p.size for p in model.params()))
    return kept if "val_accuracy" in kept else {"val_accuracy": math.nan, "loss": math.nan, **kept}
