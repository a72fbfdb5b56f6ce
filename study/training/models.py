"""Which model a trial trains: the lesson's MLP (built in), shaped for the trial's dataset."""

from __future__ import annotations

import math
from typing import Any

from study.config import TrialConfig
from study.data.registry import DatasetInfo
from study.training.lesson_mlp import build_model as build_lesson_mlp


def build_model(config: TrialConfig, data: DatasetInfo) -> Any:
    """An uncompiled Keras model for `config` on `data` (imports Keras: after the backend is chosen)."""
    return build_lesson_mlp(config, input_dim=math.prod(data.input_shape), classes=data.num_classes)


def model_inputs(model: Any, x: Any) -> Any:
    """`x` reshaped to what the model takes (a view: the lesson's MLP reads MNIST as 784 values)."""
    shape = tuple(model.input_shape[1:])
    return x if tuple(x.shape[1:]) == shape else x.reshape((len(x), *shape))
