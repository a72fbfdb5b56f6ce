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

from typing import Annotated, Any

from pydantic import Field, WrapValidator, model_validator

from study.config import FIELD_NAMES, Factor, Hyperparameter
from study.config.factors import is_int, is_number, is_scalar
from study.config.user_model import LESSON_MODEL, name_problem
from study.core.errors import SpecError
from study.spec.schema import Problem, Section, check, choice, finite_number, says

TYPES = ("int", "float", "bool", "choice", "text")
EXAMPLE = "e.g. filters: {type: int, low: 1, default: 16} or kernel_size: {type: choice, choices: [3, 5], default: 3}"


def _scalar(value: Any) -> Any:
    if not is_scalar(value) or (is_number(value) and not finite_number(value)):
        raise Problem(f"{value!r} must be a number, a boolean or a string")
    return value


def _once(values: list) -> list:
    if len({(type(v), v) for v in values}) != len(values):
        raise Problem(f"{values} repeats a value; list each once")
    return values


Choices = Annotated[list[Annotated[Any, check(_scalar)]], Field(min_length=1), check(_once),
                    says("must be a non-empty list of values (numbers, booleans or strings)")]


class Declaration(Section):
    """One hyperparameter as declared: `{type, default, choices or low/high}`."""

    shape = f"must be a mapping {{type, default, choices or low/high}}, {EXAMPLE}"
    type: choice(TYPES) = Field(None, validate_default=True)
    default: Any = Field(description="the value of every trial that does not set it")
    choices: Choices = None
    low: Any = None
    high: Any = None

    @model_validator(mode="before")
    @classmethod
    def _applies(cls, raw: Any) -> Any:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind in TYPES and "choices" in raw and kind != "choice":
            raise Problem(f"only applies to type choice (type is {kind})", "choices")
        for end in ("low", "high"):
            if kind in TYPES and end in raw and kind not in ("int", "float"):
                raise Problem(f"only applies to type int or float (type is {kind})", end)
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        kind, given = self.type, self.model_fields_set
        for end in ("low", "high"):
            value = getattr(self, end)
            if end in given and kind == "int" and not is_int(value):
                raise Problem(f"{value!r} must be an integer (type is int)", end)
            if end in given and not finite_number(value):
                raise Problem(f"{value!r} must be a number (YAML reads 1e-4 as text: write 1.0e-4)", end)
        if kind == "choice" and self.choices is None:
            raise Problem("must be a non-empty list of values (numbers, booleans or strings)", "choices")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise Problem(f"inverted range: low {self._end(self.low)} > high {self._end(self.high)}")
        return self

    def declare(self, name: str) -> Hyperparameter:
        """The declaration as a factor of the user's model; its default must be one of its values."""
        ends = {end: self._end(getattr(self, end)) for end in ("low", "high") if end in self.model_fields_set}
        choices = {"choices": tuple(self.choices)} if self.type == "choice" else {}
        factor = Factor(kind=self.type, structural=True, doc=f"your hyperparameter {name}", **ends, **choices)
        default = factor.coerce(self.default)
        problem = factor.problem(name, default)
        if problem:
            raise Problem(problem, name, "default")
        return Hyperparameter(name=name, factor=factor, default=default)

    def _end(self, value: Any) -> Any:
        return value if self.type == "int" else float(value)


def _declared(raw: Any, handler: Any) -> dict[str, Hyperparameter]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise Problem(f"must be a mapping of name to its declaration, {EXAMPLE}")
    for name in raw:
        problem = name_problem(name, FIELD_NAMES)
        if problem:
            raise Problem(problem, str(name))
    return {name: declaration.declare(name) for name, declaration in handler(raw).items()}


# The `hyperparameters:` key of a study or tuning spec: name -> Hyperparameter (its factor and default).
Hyperparameters = Annotated[dict[str, Declaration], WrapValidator(_declared)]


def check_used(source: str, declared: dict[str, Hyperparameter], models: set[str]) -> None:
    """Hyperparameters only mean something to a model or training code of the user's own: the lesson's MLP
    takes none. `models`: what trains the study's trials (study.config.user_code.code_of)."""
    if declared and models == {LESSON_MODEL}:
        raise SpecError(source, "hyperparameters", f"only a model of your own (model: package.module:function) or "
                                                   f"your own training code (train:, command:) uses them; "
                                                   f"{LESSON_MODEL} takes none")
