"""A study's own model, checked before anything is created: it imports, and for every model structure of the
study the builder returns a keras.Model with one input that takes the data's examples and one output that is a
softmax over the data's classes. Each problem is one SpecError naming the spec's `model` key (exit 2).

Imports Keras inside `check_models` only: call it after study.training.backend.select_backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from study.config import FACTORS, LESSON_MODEL, TrialConfig, structure_key
from study.core.errors import SpecError
from study.data.registry import DatasetInfo, dataset_info
from study.training.builders import ModelError, resolve, shape_fits
from study.training.executors.registry import inert_problem
from study.training.models import build_model, model_inputs

_CHECKED: set[tuple] = set()  # structures this process has checked (a worker started in-process checks none twice)


def check_models(configs: Iterable[TrialConfig], source: str) -> int:
    """Refuse a factor an executor declares inert; build each user-model structure among `configs` once;
    return how many were built."""
    configs = list(configs)
    check_inert(configs, source)
    configs = [c for c in configs if c.model != LESSON_MODEL]
    todo: dict[tuple, TrialConfig] = {}
    for config in configs:
        key = (config.dataset, structure_key(config))
        if key not in _CHECKED:
            todo.setdefault(key, config)
    if not todo:
        return 0
    import keras  # backend-selection import: the caller chose the backend

    for reference in sorted({c.model for c in todo.values()}):
        try:
            resolve(reference)  # an import problem is the reference's, whatever the hyperparameters
        except ModelError as exc:
            raise SpecError(source, "model", str(exc)) from exc
    varying = _varying(configs)
    for key, config in todo.items():
        where = (" (built for " + ", ".join(f"{n}={config.values()[n]}" for n in varying) + ")") if varying else ""
        data = dataset_info(config.dataset)
        keras.backend.clear_session(free_memory=False)  # the full collection (0.3 s here) once, at the end
        try:
            model = build_model(config, data)
        except ModelError as exc:
            raise SpecError(source, "model", f"{exc}{where}") from exc
        problem = model_problem(model, data)
        if problem:
            raise SpecError(source, "model", f"{config.model}: {problem}{where}")
        if config.executor == "fused":
            from study.training.fused.initial_state import fusion_problem  # backend-selection import: Keras

            problem = fusion_problem(model)
            if problem:
                raise SpecError(source, "executor", f"fused cannot train {config.model}: {problem}{where}; use "
                                                    "executor: keras")
        _CHECKED.add(key)
    keras.backend.clear_session()
    return len(todo)


def check_inert(configs: Iterable[TrialConfig], source: str) -> None:
    """A SpecError (exit 2, one line naming `executor`) for a trial that sets a factor its executor declares
    inert (study.training.executors.registry): it would train as if the factor were not set."""
    for config in configs:
        problem = inert_problem(config)
        if problem:
            raise SpecError(source, "executor", problem)


def model_problem(model: Any, data: DatasetInfo) -> str | None:
    """Why `model` cannot train on `data` with the framework's loss (None if it can)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return (f"the model has {len(model.inputs)} input(s) and {len(model.outputs)} output(s); the framework "
                "feeds one input (the examples) and reads one output (the class probabilities)")
    shape = tuple(model.input_shape[1:])
    if not shape_fits(shape, tuple(data.input_shape)):
        return (f"the model takes inputs of shape {shape}, but {data.name}'s examples have shape "
                f"{tuple(data.input_shape)}: build its Input from the input_shape argument")
    classes = model.output_shape[-1]
    if classes != data.num_classes:
        return (f"the model outputs {classes} value(s) per example, but {data.name} has {data.num_classes} classes: "
                "end it with a Dense(num_classes, activation='softmax')")
    x = model_inputs(model, np.zeros((2, *data.input_shape), dtype=np.float32))
    try:
        import keras  # backend-selection import: check_models imported it first

        probs = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - the user's layers: say what they raised
        return f"calling the model on a batch of {data.name}'s shape raised {type(exc).__name__}: {exc}"
    sums = probs.reshape(len(probs), -1).sum(axis=1)
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or np.abs(sums - 1).max() > 1e-3:
        return (f"its outputs are not class probabilities (a row sums to {float(sums[0]):.4g}): end it with a "
                "softmax; the framework's loss is sparse categorical cross-entropy on probabilities")
    return None


def _varying(configs: list[TrialConfig]) -> list[str]:
    """The structural fields and hyperparameters whose values differ among `configs` (named in `built for`)."""
    values = [c.values() for c in configs]
    names = [n for n, f in FACTORS.items() if f.structural and n != "hparams"] + [n for n, _ in configs[0].hparams]
    return [n for n in names if len({repr(v.get(n)) for v in values}) > 1]
