"""Config fields in a spec: their pydantic types, generated from the factor declarations (study.config).

A field's `declare(...)` in TrialConfig (kind, choices, range, optional, extra rule) is the one source:
`field_type` turns it into pydantic constraints, and a rejected value reads as the declaration words
it (`Factor.problem`: "0 <= dropout < 1"). tests/spec/test_field_types.py checks the two agree.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, PlainValidator, Strict, StrictBool, StrictInt, StrictStr, TypeAdapter, WrapValidator

from study.config import FACTORS, FIELD_NAMES, Factor, Hyperparameter, TrialConfig
from study.config.user_code import code_problem
from study.core.errors import SpecError
from study.data.registry import static_train_size
from study.spec.designs import Level
from study.spec.schema import Problem, Section, cached, check, says, section, validate
from study.spec.user_code import check_code, code_executor

# Top-level keys that fill the base config (study-wide settings).
STUDY_WIDE_FIELDS = ("dataset", "epochs", "batch_size", "validation", "train_subset", "backend", "executor", "model",
                     "train", "command")
# Config fields a spec can set by name: all but the seed (seeds: ...) and the hyperparameters' own container.
SETTABLE = tuple(n for n in FIELD_NAMES if n not in ("seed", "hparams"))


def field_type(name: str, factor: Factor) -> Any:
    """The pydantic type of config field (or own hyperparameter) `name`, generated from its declaration."""
    if factor.kind == "choice":
        core: Any = Annotated[Literal[factor.choices], WrapValidator(_as_written)]
    elif factor.kind == "bool":
        core = StrictBool
    elif factor.kind == "int":
        core = Annotated[StrictInt, Field(ge=factor.low, le=factor.high)]
    elif factor.kind == "float":
        ends = {"gt" if factor.low_open else "ge": factor.low, "lt" if factor.high_open else "le": factor.high}
        core = Annotated[float, Strict(), Field(allow_inf_nan=False, **ends)]
    elif factor.kind == "text":
        core = Annotated[StrictStr, Field(min_length=1)]
    else:
        raise ValueError(f"a spec does not set {name} ({factor.kind}) directly")
    if factor.optional:
        core = Optional[core]  # noqa: UP007 - a runtime type expression
    if factor.check is not None:
        core = Annotated[core, check(lambda value: _passes(factor.check, value))]
    return Annotated[core, says(lambda value: factor.problem(name, factor.coerce(value)))]


@dataclass(frozen=True)
class Fields:
    """The names a spec may set (built-in fields, then its own hyperparameters) and the models that check them."""

    declared: dict[str, Hyperparameter] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return SETTABLE + tuple(self.declared)

    def factor(self, name: str) -> Factor:
        return self.declared[name].factor if name in self.declared else FACTORS[name]

    def defaults(self) -> dict[str, Any]:
        return {name: h.default for name, h in self.declared.items()}

    def base(self, source: str, raw: Any, top: dict[str, Any]) -> TrialConfig:
        """`base` plus the study-wide fields set at the top level (`top`, checked as the spec's own keys); a field
        set in both places is an error. The spec's own hyperparameters start at their defaults."""
        raw = raw or {}
        given = validate(self._models()[0], raw, source, at=("base",)).given(raw)
        for name in given:
            if name in top:
                raise SpecError(source, f"base.{name}", "is also set at the top level; set it in one place")
        own = {**self.defaults(), **{n: v for n, v in given.items() if n in self.declared}}
        values = {**{n: v for n, v in given.items() if n not in self.declared}, **top}
        base = TrialConfig(**code_executor(source, values), hparams=own)  # train:/command: imply their executor
        check_code(source, base)
        return base

    def factors(self, source: str, raw: Any) -> dict[str, tuple[Level, ...]]:
        """`factors`: name -> its levels, each a plain value of the field or `{label: {field: value, ...}}`."""
        return {} if raw is None else validate(self._models()[1], raw, source, at=("factors",)).given(raw)

    def model(self, build: Callable[[dict[str, Factor]], Any]) -> Any:
        """`build(name -> factor of each settable name)`, built once per set of declared hyperparameters."""
        factors = {**{n: FACTORS[n] for n in SETTABLE}, **{n: self.factor(n) for n in self.declared}}
        return cached((build.__qualname__, *factors.items()), lambda: build(factors))

    def _models(self) -> tuple[type[Section], type[Section]]:
        return self.model(_models)


class BaseSection(Section):
    shape = "must be a mapping of config fields to values"


class CompoundLevel(Section):
    shape = "must be a non-empty mapping of config fields to values"
    nonempty = True


class FactorsSection(Section):
    shape = "must be a mapping of factor name to a list of levels"

    @classmethod
    def unknown(cls, key: Any) -> str:
        return unknown_factor(key, cls.keys())


def _models(factors: dict[str, Factor]) -> tuple[type[Section], type[Section]]:
    """The `base` and the `factors` models of a spec whose settable fields are `factors`."""
    types = {name: field_type(name, factor) for name, factor in factors.items()}
    compound = TypeAdapter(dict[str, section("CompoundLevel", CompoundLevel, types)])
    levels = {name: _levels(name, TypeAdapter(kind), compound, tuple(types)) for name, kind in types.items()}
    return section("Base", BaseSection, types), section("Factors", FactorsSection, levels)


def _levels(factor: str, plain: TypeAdapter, compound: TypeAdapter, names: tuple[str, ...]) -> Any:
    """A factor's levels: each a plain value of its field, or {label: {field: value, ...}} setting it and others."""
    def level(value: Any) -> Level:
        if not isinstance(value, dict):
            value = plain.validate_python(value)
            return Level(label=str(value).lower() if isinstance(value, bool) else str(value), values={factor: value})
        if len(value) != 1:
            raise Problem("a compound level must be a single {label: {field: value}} mapping")
        (label, values), = ((str(k), v) for k, v in value.items())
        if isinstance(values, dict) and values and factor not in map(str, values) and set(map(str, values)) <= set(names):
            raise Problem(f"must set the factor's own field {factor!r}", label)  # before the values, after the keys
        return Level(label=label, values=compound.validate_python({label: values})[label].given(values))
    return Annotated[list[Annotated[Any, PlainValidator(level)]], Field(min_length=1), check(_one_label_each),
                     says("must be a non-empty list of levels")]


def _one_label_each(levels: list[Level]) -> tuple[Level, ...]:
    labels = [level.label for level in levels]
    if len(set(labels)) != len(labels):
        raise Problem(f"levels {labels} repeat a label; each level once")
    return tuple(levels)


def unknown_factor(name: str, names: tuple[str, ...]) -> str:
    """`unknown factor; did you mean 'filters'? allowed factors: ...` (a typo in a factor is the usual cause)."""
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown factor; {hint}allowed factors: {', '.join(names)}"


def study_wide() -> dict[str, Any]:
    """The study-wide top-level keys as model fields (absent: None, which the type would refuse if written)."""
    return {name: (field_type(name, FACTORS[name]), None) for name in STUDY_WIDE_FIELDS}


def checked_field(source: str, key: str, name: str, value: Any) -> Any:
    """One config field's value, validated and typed (an integer for a float field becomes a float)."""
    return validate(field_type(name, FACTORS[name]), value, source, at=(key,))


def config_error(config: TrialConfig) -> str | None:
    """Cross-field checks that only make sense on a complete config."""
    if config.schedule.startswith("warmup") and config.epochs <= config.warmup_epochs:
        return (f"schedule {config.schedule} needs epochs > warmup_epochs "
                f"(got epochs={config.epochs}, warmup_epochs={config.warmup_epochs})")
    if code_problem(config):
        return code_problem(config)
    if config.executor == "fused" and config.backend != "jax":
        return f"executor fused trains with JAX: set backend: jax (got backend={config.backend})"
    available = static_train_size(config.dataset, config.validation)
    if config.train_subset is not None and available is not None and config.train_subset > available:
        return (f"train_subset={config.train_subset} exceeds the {available} training images available with "
                f"validation={config.validation}")
    return None


def _as_written(value: Any, handler: Any) -> Any:
    """A choice keeps the value as written (3.0 for the choice 3), and a boolean never matches a number."""
    if isinstance(handler(value), bool) != isinstance(value, bool):
        raise ValueError("a boolean and a number are different choices")
    return value


def _passes(rule: Any, value: Any) -> Any:
    problem = rule(value) if value is not None else None
    if problem:
        raise Problem(problem)
    return value
