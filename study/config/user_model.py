"""Your own model and hyperparameters, as a TrialConfig holds them.

`model` names the builder: `lesson_mlp` (the lesson's MLP, built in) or a Python reference
`package.module:function`. A spec's `hyperparameters:` declares factors of that model
(name, type, choices or range, default); their values travel in one TrialConfig field,
`hparams`, as name-sorted (name, value) pairs. Why pairs and not a dict: the config is
frozen and hashable (designs put configs in sets, the compiled-model cache keys on
them), the pairs survive the queue's JSON round trip, and, being empty by default, the
field enters the trial key only when a study declares hyperparameters, so every key of
a study without them stays what it was (tests/test_layout.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from study.config.factors import Factor

LESSON_MODEL = "lesson_mlp"
PARAM_PREFIX = "hp."  # MLflow param of user hyperparameter `filters`: `hp.filters`
REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Columns of the tidy trial table (study.analysis.runs) and names of the builder's `hp` object: a user
# hyperparameter of one of these names would shadow them (tests/analysis check the list stays complete).
RESERVED = frozenset({
    "run_id", "trial_key", "status", "mlflow_status", "start_time", "end_time", "imputed", "config", "n", "seed",
    "final_val_accuracy", "final_val_loss", "test_accuracy", "test_loss", "best_val_accuracy", "last_accuracy",
    "last_loss", "final_accuracy", "best_epoch", "epochs_run", "wall_time_s", "params", "level", "factor",
    "keys", "items", "values", "get", "model", "hparams",
    "input_shape", "num_classes",  # on the hp of a build(hp) builder (study.training.builders)
})
Pairs = tuple[tuple[str, Any], ...]


def model_problem(value: object) -> str | None:
    """Why `value` cannot name a model builder (None if it can); whether it imports is checked once Keras may be."""
    if isinstance(value, str) and (value == LESSON_MODEL or REFERENCE.match(value)):
        return None
    return (f"{value!r} is not allowed; allowed values: {LESSON_MODEL} (the lesson's MLP) or a Python reference "
            "package.module:function to your builder")


def pairs(value: Mapping[str, Any] | Iterable[Any]) -> Pairs:
    """Hyperparameter values as name-sorted (name, value) pairs, from a dict or pairs (lists after JSON)."""
    items = value.items() if isinstance(value, Mapping) else value
    out = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"hyperparameters must be (name, value) pairs, got {item!r}")
        out.append((item[0], item[1]))
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"hyperparameter names repeat: {names}")
    return tuple(sorted(out, key=lambda item: str(item[0])))


def param_name(name: str) -> str:
    return PARAM_PREFIX + name


def parse_text(text: str, factor: Factor | None = None) -> Any:
    """A hyperparameter's MLflow param text as its value: by its declaration when known, else the literal it
    reads as (True/False, an integer, a number, or the text itself)."""
    if factor is not None:
        return factor.parse(text)
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Hyperparameter:
    """One declared hyperparameter of a user's model: its factor declaration (kind, choices, range) and default."""

    name: str
    factor: Factor
    default: Any

    def problem(self, value: Any) -> str | None:
        return self.factor.problem(self.name, value)


def name_problem(name: object, builtin: Iterable[str]) -> str | None:
    """Why `name` cannot name a user hyperparameter (None if it can)."""
    if not isinstance(name, str) or not NAME.match(name):
        return f"{name!r} must be a name of letters, digits and '_' starting with a letter (it becomes hp.{name})"
    if name in set(builtin):
        return "is a built-in config field: vary it as a factor directly, or give your hyperparameter another name"
    if name in RESERVED or name.startswith("level_"):
        return "is a name the framework's tables already use; choose another"
    return None
