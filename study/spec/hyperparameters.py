"""A spec's own hyperparameters (`hyperparameters:`): declared once, then named like any config field.

```yaml
model: my_models.cnn:build
hyperparameters:
  filters: {type: int, low: 1, default: 16}
  kernel_size: {type: choice, choices: [3, 5], default: 3}
factors:
  filters: [8, 32]
```

Each declaration is a factor declaration like a built-in field's (study.config.factors),
so `base`, `factors`, compound levels and a tuning `search_space` validate a user
hyperparameter's values exactly as they validate `dropout`'s, and errors name the key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from study.config import FACTORS, FIELD_NAMES, Factor, Hyperparameter, coerce_field, field_problem
from study.config.factors import is_int, is_number, is_scalar
from study.config.user_model import LESSON_MODEL, name_problem
from study.core.errors import SpecError
from study.spec.reading import finite_number, reject_unknown

TYPES = ("int", "float", "bool", "choice", "text")
KEYS = ("type", "default", "choices", "low", "high")
EXAMPLE = "e.g. filters: {type: int, low: 1, default: 16} or kernel_size: {type: choice, choices: [3, 5], default: 3}"
# Config fields a spec can set by name: all but the seed (seeds: ...) and the hyperparameters' own container.
SETTABLE = tuple(n for n in FIELD_NAMES if n not in ("seed", "hparams"))


@dataclass(frozen=True)
class Fields:
    """The names a spec may set (built-in fields, then its own hyperparameters) and how each value is checked."""

    declared: dict[str, Hyperparameter] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return SETTABLE + tuple(self.declared)

    def factor(self, name: str) -> Factor:
        return self.declared[name].factor if name in self.declared else FACTORS[name]

    def checked(self, source: str, key: str, name: str, value: Any) -> Any:
        """One value, validated and typed (an integer for a float becomes a float); SpecError naming `key`."""
        if name in self.declared:
            value = self.declared[name].factor.coerce(value)
            problem = self.declared[name].problem(value)
        else:
            value = coerce_field(name, value)
            problem = field_problem(name, value)
        if problem:
            raise SpecError(source, key, problem)
        return value

    def defaults(self) -> dict[str, Any]:
        return {name: h.default for name, h in self.declared.items()}


def parse_hyperparameters(source: str, raw: Any) -> dict[str, Hyperparameter]:
    """`hyperparameters:` -> name -> Hyperparameter (kind, choices or range, default), every problem a SpecError."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise SpecError(source, "hyperparameters", f"must be a mapping of name to its declaration, {EXAMPLE}")
    return {name: _parse_one(source, f"hyperparameters.{name}", name, body) for name, body in raw.items()}


def _parse_one(source: str, where: str, name: Any, body: Any) -> Hyperparameter:
    problem = name_problem(name, FIELD_NAMES)
    if problem:
        raise SpecError(source, where, problem)
    if not isinstance(body, dict):
        raise SpecError(source, where, f"must be a mapping {{type, default, choices or low/high}}, {EXAMPLE}")
    reject_unknown(source, where, body, KEYS)
    kind = body.get("type")
    if kind not in TYPES:
        raise SpecError(source, f"{where}.type", f"{kind!r} is not allowed; allowed values: {', '.join(TYPES)}")
    if "choices" in body and kind != "choice":
        raise SpecError(source, f"{where}.choices", f"only applies to type choice (type is {kind})")
    for end in ("low", "high"):
        if end in body and kind not in ("int", "float"):
            raise SpecError(source, f"{where}.{end}", f"only applies to type int or float (type is {kind})")
    options: dict[str, Any] = {}
    if kind == "choice":
        options["choices"] = _choices(source, f"{where}.choices", body.get("choices"))
    if kind in ("int", "float"):
        options.update(_range(source, where, kind, body))
    factor = Factor(kind=kind, structural=True, doc=f"your hyperparameter {name}", **options)
    if "default" not in body:
        raise SpecError(source, f"{where}.default", "is required: the value of every trial that does not set it")
    default = factor.coerce(body["default"])
    problem = factor.problem(name, default)
    if problem:
        raise SpecError(source, f"{where}.default", problem)
    return Hyperparameter(name=name, factor=factor, default=default)


def _choices(source: str, key: str, raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError(source, key, "must be a non-empty list of values (numbers, booleans or strings)")
    for i, value in enumerate(raw):
        if not is_scalar(value) or (is_number(value) and not finite_number(value)):
            raise SpecError(source, f"{key}[{i}]", f"{value!r} must be a number, a boolean or a string")
    if len({(type(v), v) for v in raw}) != len(raw):
        raise SpecError(source, key, f"{raw} repeats a value; list each once")
    return tuple(raw)


def _range(source: str, where: str, kind: str, body: dict) -> dict[str, Any]:
    ends: dict[str, Any] = {}
    for end in ("low", "high"):
        if end not in body:
            continue
        value = body[end]
        if kind == "int" and not is_int(value):
            raise SpecError(source, f"{where}.{end}", f"{value!r} must be an integer (type is int)")
        if not finite_number(value):
            raise SpecError(source, f"{where}.{end}", f"{value!r} must be a number (YAML reads 1e-4 as text: "
                                                      "write 1.0e-4)")
        ends[end] = value if kind == "int" else float(value)
    if "low" in ends and "high" in ends and ends["low"] > ends["high"]:
        raise SpecError(source, where, f"inverted range: low {ends['low']} > high {ends['high']}")
    return ends


def check_used(source: str, declared: dict[str, Hyperparameter], models: set[str]) -> None:
    """Hyperparameters only mean something to a model or training code of the user's own: the lesson's MLP
    takes none. `models`: what trains the study's trials (study.config.user_code.code_of)."""
    if declared and models == {LESSON_MODEL}:
        raise SpecError(source, "hyperparameters", f"only a model of your own (model: package.module:function) or "
                                                   f"your own training code (train:, command:) uses them; "
                                                   f"{LESSON_MODEL} takes none")


def unknown_factor(name: str, fields: Fields) -> str:
    """`unknown factor; did you mean 'filters'? allowed factors: ...` (a typo in a factor is the usual cause)."""
    close = difflib.get_close_matches(str(name), fields.names, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown factor; {hint}allowed factors: {', '.join(fields.names)}"
