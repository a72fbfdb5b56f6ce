"""Your own model: `model: package.module:function` in a spec names a builder the framework calls per trial.

    def build(hp, input_shape, num_classes) -> keras.Model
    def build(hp) -> keras.Model          # Keras Tuner's convention: hp.input_shape, hp.num_classes

`hp` holds every config field (`hp.units`, `hp.dropout`, `hp.batch_norm`, `hp.init`, ...)
and the spec's own hyperparameters (`hp.filters`), by attribute or by key; `input_shape`
is one example's shape (digits: (8, 8, 1)) and `num_classes` the number of labels. The
builder returns an uncompiled Keras model ending in a softmax over `num_classes`: the
optimizer, loss, metrics, schedules and callbacks stay the framework's, so tracking,
resume and reports work unchanged. Keras is imported inside functions only: this module
is importable before the backend is chosen (study.training.backend).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from study.core.errors import InputError


class ModelError(InputError):
    """A model reference that does not import, or a builder that fails or returns something else than a model."""


class Hyperparameters(Mapping[str, Any]):
    """A trial's fields and hyperparameters, read-only, by attribute (`hp.filters`) or key (`hp["filters"]`)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"hp has no {name!r}; it has: {', '.join(sorted(self._values))}") from None

    def __repr__(self) -> str:
        return f"Hyperparameters({self._values!r})"


def resolve(reference: str) -> Callable[..., Any]:
    """The builder function `package.module:function` names (imported once; Python caches the module)."""
    module_name, _, function = reference.partition(":")
    try:
        module = importlib.import_module(module_name)  # the user's module: may import Keras (backend chosen)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ModelError(f"cannot import {module_name!r} ({exc}): run from the directory that holds it or "
                             "add that directory to PYTHONPATH") from exc
        raise ModelError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, say so in one line
        raise ModelError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    builder = getattr(module, function, None)
    if builder is None:
        raise ModelError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {function!r}")
    if not callable(builder):
        raise ModelError(f"{reference} is a {type(builder).__name__}, not a function")
    return builder


def build_user_model(reference: str, values: Mapping[str, Any], input_shape: tuple[int, ...],
                     num_classes: int) -> Any:
    """Call the builder; a builder that raises, or returns anything but a keras.Model, is a ModelError."""
    import keras

    builder = resolve(reference)
    try:
        if takes_hp_only(builder):  # Keras Tuner's convention: build(hp), the data's shape on hp
            model = builder(TunerHyperparameters(values, tuple(input_shape), num_classes))
        else:
            model = builder(Hyperparameters(values), input_shape=tuple(input_shape), num_classes=num_classes)
    except Exception as exc:  # noqa: BLE001 - the builder is the user's code: name it and what it raised
        raise ModelError(f"{reference} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{reference} returned {type(model).__name__}, not a keras.Model")
    return model


def takes_hp_only(builder: Callable[..., Any]) -> bool:
    """Whether `builder` is `build(hp)` (keras_tuner.HyperModel.build), not `build(hp, input_shape, num_classes)`."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind(None, input_shape=(), num_classes=0)
        return False
    except TypeError:
        pass
    try:
        signature.bind(None)
        return True
    except TypeError:
        return False


class TunerHyperparameters(Hyperparameters):
    """`hp` of a `build(hp)` builder: the trial's values plus `hp.input_shape` and `hp.num_classes`, and Keras
    Tuner's calls, so a builder written for Keras Tuner runs unchanged: `hp.Int("units", 32, 512)` is the
    trial's `units` (a field or a declared hyperparameter), or the call's default when the study names no
    such value (Keras Tuner's own rule: `default`, else `min_value`, the first choice, False)."""

    def __init__(self, values: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__({**values, "input_shape": input_shape, "num_classes": num_classes})

    def _value(self, name: str, default: Any) -> Any:
        return self._values.get(name, default)

    def Int(self, name: str, min_value: int = 0, max_value: int | None = None, step: Any = None,  # noqa: N802
            sampling: Any = None, default: int | None = None, **_: Any) -> Any:
        return self._value(name, min_value if default is None else default)

    def Float(self, name: str, min_value: float = 0.0, max_value: float | None = None, step: Any = None,  # noqa: N802
              sampling: Any = None, default: float | None = None, **_: Any) -> Any:
        return self._value(name, min_value if default is None else default)

    def Choice(self, name: str, values: list[Any], ordered: Any = None, default: Any = None,  # noqa: N802
               **_: Any) -> Any:
        return self._value(name, values[0] if default is None else default)

    def Boolean(self, name: str, default: bool = False, **_: Any) -> Any:  # noqa: N802
        return self._value(name, default)

    def Fixed(self, name: str, value: Any, **_: Any) -> Any:  # noqa: N802
        return self._value(name, value)

    def conditional_scope(self, parent_name: str, parent_values: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def shape_fits(model_shape: tuple, data_shape: tuple) -> bool:
    """Whether examples of `data_shape` can be fed to the model: the same shape (None matches any size), or the
    same number of values (then they are reshaped, as the lesson's MLP reads 28 x 28 images as 784 values)."""
    if len(model_shape) == len(data_shape) and all(m is None or m == d for m, d in zip(model_shape, data_shape)):
        return True
    return None not in model_shape and math.prod(model_shape) == math.prod(data_shape)
