"""The optimizer a TrialConfig asks for (Keras 3): its kind, learning rate and weight decay."""

from __future__ import annotations

from study.config import TrialConfig


def build_optimizer(config: TrialConfig):
    """Plain SGD or Adam; `weight_decay` is Keras' decoupled weight decay (0: none, as in the lesson)."""
    import keras

    options = {"learning_rate": config.learning_rate}
    if config.weight_decay:
        options["weight_decay"] = config.weight_decay
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(**options)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(**options)
    raise ValueError(f"optimizer must be sgd or adam; got {config.optimizer!r}")
