"""The parts of a tuning spec that Optuna reads: the search space, the points it tries first, sampler and pruner.

```yaml
search_space:
  dropout: {low: 0.0, high: 0.5}
  learning_rate: {low: 1.0e-4, high: 0.1, log: true}
enqueue: [{dropout: 0.1, learning_rate: 0.05}]
sampler: {name: tpe, seed: 1}   # or just: sampler: tpe
pruner: median
```
A searched field's ends are values of the field, checked by its declaration like any value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, PlainValidator, Strict, StrictInt, create_model

from study.config import FACTORS, Factor
from study.config.factors import is_int
from study.spec.fields import Fields, field_type
from study.spec.schema import Boolean, Problem, Section, cached, check, finite_number, integer, says, section
from study.spec.schema import validate

# name -> {option: default}; an option given in the spec must be one of these.
SAMPLERS: dict[str, dict[str, Any]] = {
    "tpe": {"seed": 0, "n_startup_trials": 10, "multivariate": False},
    "random": {"seed": 0},
    "grid": {"seed": 0, "points": 3},
}
PRUNERS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 0},
    "hyperband": {"min_resource": 1, "reduction_factor": 3},
    "none": {},
}


@dataclass(frozen=True)
class Param:
    """One searched config field: Optuna's suggest_int/suggest_float arguments."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    kind: str = field(default="", compare=False)  # the field's kind (int or float); not part of as_dict()

    @property
    def is_int(self) -> bool:
        return (self.kind or FACTORS[self.name].kind) == "int"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def grid(self, points: int) -> list[float]:
        """`points` evenly spaced values (log-spaced for log ranges), ends included."""
        if self.log:
            values = [math.exp(math.log(self.low) + i * (math.log(self.high) - math.log(self.low)) / (points - 1))
                      for i in range(points)]
        else:
            values = [self.low + i * (self.high - self.low) / (points - 1) for i in range(points)]
        values = [min(max(v, self.low), self.high) for v in values]  # no float drift outside the range
        if self.is_int:
            return sorted({int(round(v)) for v in values})
        return [float(f"{v:.6g}") if self.low < v < self.high else v for v in values]

    def as_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclass(frozen=True)
class Choice:
    """A sampler or pruner: its name and complete options (defaults filled in)."""

    name: str
    options: dict[str, Any]


class SpaceSection(Section):
    shape = ("must be a non-empty mapping of config field to {low, high, log, step}, e.g. dropout: {low: 0.0, "
             "high: 0.5}")
    nonempty = True

    @classmethod
    def unknown(cls, key: Any) -> str:
        return f"unknown or non-numeric field; searchable fields: {', '.join(cls.keys())}"


class RangeSection(Section):
    shape = "must be a mapping {low: ..., high: ...} (optional log: true, step: ...)"


class PointSection(Section):
    shape = "must be a non-empty mapping of searched fields to values"
    nonempty = True


def parse_space(source: str, raw: Any, fields: Fields) -> dict[str, Param]:
    """`search_space`: each numeric field (built-in or the spec's own) -> its range."""
    return validate(fields.model(_space), raw, source, at=("search_space",)).given(raw)


def parse_enqueue(source: str, raw: Any, space: dict[str, Param]) -> tuple[dict[str, float], ...]:
    """Points Optuna tries first (study.enqueue_trial), each inside the search space."""
    points = validate(cached(("enqueue", *((p.name, p.low, p.high, p.is_int) for p in space.values())),
                             lambda: _points(space)), raw, source, at=("enqueue",))
    return tuple(p.given(r) for p, r in zip(points, raw))


def choice_of(table: dict[str, dict[str, Any]]) -> Any:
    """`sampler: tpe` or `sampler: {name: tpe, seed: 1}` -> Choice; each option typed like its default."""
    models = {name: create_model(name, __base__=Section, name=(str, name), **{
        option: (Boolean if isinstance(default, bool) else integer(0), default) for option, default in options.items()})
        for name, options in table.items()}

    def parse(raw: Any) -> Choice:
        raw = {"name": raw} if isinstance(raw, str) else raw
        if not isinstance(raw, dict) or "name" not in raw:
            raise Problem(f"must be a name ({', '.join(table)}) or a mapping with `name` and options")
        name = raw["name"]
        if not isinstance(name, str) or name not in table:
            raise Problem(f"{name!r} is not allowed; allowed values: {', '.join(table)}", *(("name",) if len(raw) > 1 else ()))
        options = models[name].model_validate(raw)
        return Choice(name=name, options={option: getattr(options, option) for option in table[name]})
    return Annotated[Any, PlainValidator(parse)]


def _space(factors: dict[str, Factor]) -> type[Section]:
    ranges = {name: _range(name, factor) for name, factor in factors.items() if factor.numeric}
    return section("SearchSpace", SpaceSection, ranges)


def _points(space: dict[str, Param]) -> Any:
    point = section("Point", PointSection, {name: _inside(param) for name, param in space.items()})
    return Annotated[list[point], says("must be a list of {field: value} points inside the search space")]


def _range(name: str, factor: Factor) -> Any:
    end = Annotated[field_type(name, factor), says(lambda value: _not_a_number(name, factor, value))]
    model = create_model(f"Range_{name}", __base__=RangeSection, low=(end, ...), high=(end, ...), log=(Boolean, False),
                         step=(Any, None))
    return Annotated[model, check(lambda written: _param(name, factor, written))]


def _not_a_number(name: str, factor: Factor, value: Any) -> str | None:
    """Why an end is not a number (None: it is one, and the field's declaration says what is wrong)."""
    if isinstance(value, str):
        return f"{value!r} must be a number (YAML reads 1e-4 as text: write 1.0e-4)"
    if factor.kind == "int" and not is_int(value):
        return f"{value!r} must be an integer ({name} is an integer field)"
    return None if finite_number(value) else f"{value!r} must be a number"


def _param(name: str, factor: Factor, written: RangeSection) -> Param:
    """The range's ends, log and step agree with each other and with Optuna's rules."""
    low, high, log, step = written.low, written.high, written.log, written.step
    if low == high:
        raise Problem(f"empty range: low == high == {low}; search a range with low < high or set the value in base")
    if low > high:
        raise Problem(f"inverted range: low {low} > high {high}; low must be < high")
    if log and low <= 0:
        raise Problem(f"{low} must be > 0 for a log range (log: true)", "low")
    integral = factor.kind == "int"
    if step is not None:
        if log and not (integral and step == 1):
            raise Problem("cannot be combined with log: true (Optuna allows one of them)", "step")
        if integral and not (is_int(step) and step >= 1):
            raise Problem(f"{step!r} must be an integer >= 1", "step")
        if not finite_number(step) or not step > 0:
            raise Problem(f"{step!r} must be a number > 0", "step")
        if step > high - low:
            raise Problem(f"{step} is larger than the range {low}..{high}", "step")
    elif integral:
        step = 1  # Optuna's suggest_int default (and the only step it allows with log)
    return Param(name=name, low=low, high=high, log=log, step=step, kind=factor.kind)


def _inside(param: Param) -> Any:
    number = StrictInt if param.is_int else Annotated[float, Strict(), Field(allow_inf_nan=False)]
    return Annotated[number, Field(ge=param.low, le=param.high),
                     says(f"{{value}} must be a number in [{param.low}, {param.high}]")]


def parse_range(source: str, where: str, name: str, body: Any, factor: Factor) -> Param:
    """One range (`low`, `high`, `log`, `step`) at `where`: the syntax `tune` and `tune_each_arm` share."""
    return validate(_range(name, factor), body, source, tuple(where.split(".")))
