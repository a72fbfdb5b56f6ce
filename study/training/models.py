"""Which model a trial trains: the lesson's MLP (built in) or the user's builder, shaped for the trial's dataset.

Every executor builds its models here, so a user's model trains wherever the lesson's does.
"""

from __future__ import annotations

import math
from typing import Any

from study.config import LESSON_MODEL, TrialConfig
from study.data.registry import DatasetInfo
from study.training.builders import build_user_model
from study.training.lesson_mlp import build_model as build_lesson_mlp


def build_model(config: TrialConfig, data: DatasetInfo) -> Any:
    """An uncompiled Keras model for `config` on `data` (imports Keras: after the backend is chosen)."""
    if config.model == LESSON_MODEL:
        return build_lesson_mlp(config, input_dim=math.prod(data.input_shape), classes=data.num_classes)
    return build_user_model(config.model, config.values(), data.input_shape, data.num_classes)


def model_inputs(model: Any, x: Any) -> Any:
    """`x` reshaped to what the model takes (a view: the lesson's MLP reads MNIST as 784 values); unchanged when
    the shapes already agree (a None in the model's shape matches any size)."""
    shape = tuple(model.input_shape[1:])
    if len(shape) == x.ndim - 1 and all(m is None or m == d for m, d in zip(shape, x.shape[1:])):
        return x
    return x.reshape((len(x), *shape))
