"""Parse and validate a tuning spec (YAML) before any trial starts.

A tuning spec names a base config (`base`, or `base_from` a finished ablation
study), the numeric fields to search and how (sampler, pruner, budget). Like the
ablation spec, every error names the file and the key, unknown keys are errors,
and config values are checked by the same `field_error` the ablation spec uses.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from study.config import FACTORS, Factor, Hyperparameter, TrialConfig, searchable_fields
from study.core.errors import SpecError
from study.spec.fields import STUDY_WIDE_FIELDS, checked_field, config_error, parse_base
from study.spec.adaptive import refuse_in_tuning
from study.spec.hyperparameters import Fields, check_used, parse_hyperparameters
from study.spec.ray_resources import RayResources, parse_ray_resources
from study.spec.reading import check_top_level, finite_number, int_value, read_yaml, reject_unknown, seed_list

TOP_LEVEL_KEYS = (
    "name", "description", "base", "base_from", "search_space", "n_trials", "timeout", "sampler", "pruner",
    "metric", "direction", "seed", "retrain_seeds", "enqueue_base", "enqueue", "steps_per_execution",
    "hyperparameters", "ray",
) + STUDY_WIDE_FIELDS

# Numeric config fields that can be searched (bools are not numeric; the seed is not a hyperparameter).
SEARCHABLE = searchable_fields()
PARAM_KEYS = ("low", "high", "log", "step")

# Objective: the kept model's validation metric (epoch with the lowest val_loss).
METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}
DIRECTIONS = ("maximize", "minimize")

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


@dataclass(frozen=True)
class TuneSpec:
    name: str
    source: str
    base: TrialConfig  # seed = the tuning seed; from `base_from` once resolved
    space: dict[str, Param]
    n_trials: int
    timeout: float | None
    sampler: Choice
    pruner: Choice
    metric: str
    direction: str
    retrain_seeds: tuple[int, ...]
    enqueue_base: bool
    enqueue: tuple[dict[str, float], ...]
    steps_per_execution: int
    description: str = ""
    base_from: str | None = None
    base_overrides: dict[str, Any] = field(default_factory=dict)  # fields set in the spec itself
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    hyperparameters: dict[str, Hyperparameter] = field(default_factory=dict)  # the spec's own (`hyperparameters:`)
    ray: RayResources = RayResources()  # each Ray worker's resources under --ray (study.spec.ray_resources)

    def config_for(self, params: dict[str, Any]) -> TrialConfig:
        """The trial config for searched values `params` (the rest comes from base)."""
        return self.base.with_values(params)

    def with_base_fields(self, **fields: Any) -> TuneSpec:
        """The spec with base fields set from the command line (`--backend jax`)."""
        for name, value in fields.items():
            checked_field(f"--{name}", name, name, value)
        return replace(self, base=self.base.replace(**fields))

    def base_params(self) -> dict[str, Any]:
        """The untuned base's values of the searched fields."""
        return {name: getattr(self.base, name) for name in self.space}


# --------------------------------------------------------------------------- loading


def load_tune_spec(path: str | Path) -> TuneSpec:
    return parse_tune_spec(read_yaml(path), source=str(path), default_name=Path(path).stem)


def parse_tune_spec(raw: Any, source: str = "<spec>", default_name: str = "tune") -> TuneSpec:
    refuse_in_tuning(source, raw)
    name = check_top_level(raw, source, TOP_LEVEL_KEYS, default_name)

    base_from = raw.get("base_from")
    if base_from is not None and (not isinstance(base_from, str) or not base_from):
        raise SpecError(source, "base_from", f"{base_from!r} must be the name of a finished ablation study")
    if base_from == name:
        raise SpecError(source, "base_from", f"must differ from the tuning study's own name {name!r}")
    fields = Fields(parse_hyperparameters(source, raw.get("hyperparameters")))
    base = parse_base(source, raw, fields=fields)  # validates `base` and the study-wide top-level fields
    explicit = [*(raw.get("base") or {}), *(n for n in STUDY_WIDE_FIELDS if n in raw)]
    overrides = {n: getattr(base, n) for n in explicit}  # what `base_from`'s config is overridden with
    seed = int_value(source, "seed", raw.get("seed", 0), low=0)
    base = base.replace(seed=seed)

    space = _parse_space(source, raw.get("search_space"), fields)
    metric = raw.get("metric", "val_accuracy")
    if metric not in METRICS:
        raise SpecError(source, "metric", f"{metric!r} is not allowed; allowed values: {', '.join(METRICS)}")
    direction = raw.get("direction", METRICS[metric])
    if direction not in DIRECTIONS:
        raise SpecError(source, "direction", f"{direction!r} is not allowed; allowed values: {', '.join(DIRECTIONS)}")
    if direction != METRICS[metric]:
        raise SpecError(source, "direction", f"{direction!r} contradicts metric {metric!r}, which is to "
                                             f"{METRICS[metric]}")
    timeout = raw.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not timeout > 0 or not math.isfinite(timeout)):
        raise SpecError(source, "timeout", f"{timeout!r} must be null or a number of seconds > 0")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(source, "description", "must be a string")
    enqueue_base = raw.get("enqueue_base", True)
    if not isinstance(enqueue_base, bool):
        raise SpecError(source, "enqueue_base", f"{enqueue_base!r} must be a boolean (true or false)")

    spec = TuneSpec(
        name=name,
        source=source,
        base=base,
        space=space,
        n_trials=int_value(source, "n_trials", raw.get("n_trials", 20), low=1),
        timeout=float(timeout) if timeout is not None else None,
        sampler=_parse_choice(source, "sampler", raw.get("sampler", "tpe"), SAMPLERS),
        pruner=_parse_choice(source, "pruner", raw.get("pruner", "median"), PRUNERS),
        metric=metric,
        direction=direction,
        retrain_seeds=_parse_retrain_seeds(source, raw.get("retrain_seeds", [1, 2, 3])),
        enqueue_base=enqueue_base,
        enqueue=_parse_enqueue(source, raw.get("enqueue", []), space),
        steps_per_execution=int_value(source, "steps_per_execution", raw.get("steps_per_execution", 128), low=1),
        description=description,
        base_from=base_from,
        base_overrides=overrides,
        raw=raw,
        hyperparameters=fields.declared,
        ray=parse_ray_resources(source, raw.get("ray")),
    )
    if base_from is None:  # else the model comes from the ablation study
        check_used(source, fields.declared, {spec.base.model})
    _check_choices(spec)
    if base_from is None:
        check_configs(spec)
    return spec


def with_base(spec: TuneSpec, best: TrialConfig) -> TuneSpec:
    """Resolve `base_from`: the ablation study's best config, then the spec's own settings on top."""
    own = {**dict(spec.base.hparams), **dict(best.hparams)}  # the study's values; this spec's defaults fill in
    base = best.replace(hparams=own).with_values(spec.base_overrides).replace(seed=spec.base.seed)
    resolved = replace(spec, base=base)
    check_configs(resolved, key="base_from")
    return resolved


def check_configs(spec: TuneSpec, key: str = "search_space") -> None:
    """Cross-field checks (e.g. warm-up vs epochs) on the base and on every corner of the space."""
    problem = config_error(spec.base)
    if problem:
        raise SpecError(spec.source, "base" if key == "search_space" else key, problem)
    names = list(spec.space)
    corners = itertools.product(*((spec.space[n].low, spec.space[n].high) for n in names)) if len(names) <= 10 \
        else ([p.low for p in spec.space.values()], [p.high for p in spec.space.values()])
    for corner in corners:
        params = dict(zip(names, corner))
        problem = config_error(spec.config_for(params))
        if problem:
            where = ", ".join(f"{n}={v}" for n, v in params.items())
            raise SpecError(spec.source, key, f"{problem} (at the corner {where} of the search space)")


# --------------------------------------------------------------------------- parts


def _parse_space(source: str, raw: Any, fields: Fields) -> dict[str, Param]:
    if not isinstance(raw, dict) or not raw:
        raise SpecError(source, "search_space", "must be a non-empty mapping of config field to "
                                                "{low, high, log, step}, e.g. dropout: {low: 0.0, high: 0.5}")
    space = {}
    for name, body in raw.items():
        where = f"search_space.{name}"
        searchable = SEARCHABLE + tuple(n for n, h in fields.declared.items() if h.factor.numeric)
        if name not in searchable:
            raise SpecError(source, where, f"unknown or non-numeric field; searchable fields: {', '.join(searchable)}")
        space[name] = _parse_param(source, where, name, body, fields.factor(name))
    return space


def _parse_param(source: str, where: str, name: str, body: Any, factor: Factor) -> Param:
    if not isinstance(body, dict):
        raise SpecError(source, where, "must be a mapping {low: ..., high: ...} (optional log: true, step: ...)")
    reject_unknown(source, where, body, PARAM_KEYS)
    is_int = factor.kind == "int"
    ends = {}
    for end in ("low", "high"):
        if end not in body:
            raise SpecError(source, f"{where}.{end}", "is required")
        value = body[end]
        if isinstance(value, str):
            raise SpecError(source, f"{where}.{end}", f"{value!r} must be a number (YAML reads 1e-4 as text: "
                                                      "write 1.0e-4)")
        if is_int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise SpecError(source, f"{where}.{end}", f"{value!r} must be an integer ({name} is an integer field)")
        if not _is_number(value):
            raise SpecError(source, f"{where}.{end}", f"{value!r} must be a number")
        value = value if is_int else float(value)
        problem = factor.problem(name, value)
        if problem:
            raise SpecError(source, f"{where}.{end}", problem)
        ends[end] = value
    low, high = ends["low"], ends["high"]
    if low == high:
        raise SpecError(source, where, f"empty range: low == high == {low}; search a range with low < high "
                                       "or set the value in base")
    if low > high:
        raise SpecError(source, where, f"inverted range: low {low} > high {high}; low must be < high")
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(source, f"{where}.log", f"{log!r} must be a boolean (true or false)")
    if log and low <= 0:
        raise SpecError(source, f"{where}.low", f"{low} must be > 0 for a log range (log: true)")
    step = body.get("step")
    if step is not None:
        if log and not (is_int and step == 1):
            raise SpecError(source, f"{where}.step", "cannot be combined with log: true (Optuna allows one of them)")
        if is_int and not (isinstance(step, int) and not isinstance(step, bool) and step >= 1):
            raise SpecError(source, f"{where}.step", f"{step!r} must be an integer >= 1")
        if not _is_number(step) or not step > 0:
            raise SpecError(source, f"{where}.step", f"{step!r} must be a number > 0")
        if step > high - low:
            raise SpecError(source, f"{where}.step", f"{step} is larger than the range {low}..{high}")
    elif is_int:
        step = 1  # Optuna's suggest_int default (and the only step it allows with log)
    return Param(name=name, low=low, high=high, log=log, step=step, kind=factor.kind)


def _parse_choice(source: str, key: str, raw: Any, table: dict[str, dict[str, Any]]) -> Choice:
    """`sampler: tpe` or `sampler: {name: tpe, seed: 1}`; options are checked against the defaults' types."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise SpecError(source, key, f"must be a name ({', '.join(table)}) or a mapping with `name` and options")
    name = raw["name"]
    if name not in table:
        raise SpecError(source, f"{key}.name" if len(raw) > 1 else key,
                        f"{name!r} is not allowed; allowed values: {', '.join(table)}")
    defaults = table[name]
    reject_unknown(source, key, raw, ("name", *defaults))
    options = dict(defaults)
    for option, value in raw.items():
        if option == "name":
            continue
        default = defaults[option]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise SpecError(source, f"{key}.{option}", f"{value!r} must be a boolean (true or false)")
        elif not (isinstance(value, int) and not isinstance(value, bool)) or value < 0:
            raise SpecError(source, f"{key}.{option}", f"{value!r} must be an integer >= 0")
        options[option] = value
    return Choice(name=name, options=options)


def _check_choices(spec: TuneSpec) -> None:
    if spec.sampler.name == "grid" and spec.sampler.options["points"] < 2:
        raise SpecError(spec.source, "sampler.points", f"{spec.sampler.options['points']} must be >= 2")
    if spec.pruner.name == "hyperband":
        if spec.pruner.options["min_resource"] < 1:
            raise SpecError(spec.source, "pruner.min_resource", "must be an integer >= 1 (epochs)")
        if spec.pruner.options["reduction_factor"] < 2:
            raise SpecError(spec.source, "pruner.reduction_factor", "must be an integer >= 2")


def _parse_enqueue(source: str, raw: Any, space: dict[str, Param]) -> tuple[dict[str, float], ...]:
    """Points Optuna tries first (study.enqueue_trial), each inside the search space."""
    if not isinstance(raw, list):
        raise SpecError(source, "enqueue", "must be a list of {field: value} points inside the search space")
    points = []
    for i, point in enumerate(raw):
        where = f"enqueue[{i}]"
        if not isinstance(point, dict) or not point:
            raise SpecError(source, where, "must be a non-empty mapping of searched fields to values")
        reject_unknown(source, where, point, tuple(space))
        for name, value in point.items():
            param = space[name]
            if not _is_number(value) or (param.is_int and not isinstance(value, int)) or not param.contains(value):
                raise SpecError(source, f"{where}.{name}", f"{value!r} must be a number in [{param.low}, {param.high}]")
        points.append({n: (v if space[n].is_int else float(v)) for n, v in point.items()})
    return tuple(points)


def _parse_retrain_seeds(source: str, raw: Any) -> tuple[int, ...]:
    """Seeds the tuned and the base config are both retrained with (paired by seed; an interval needs two)."""
    return seed_list(source, "retrain_seeds", raw, minimum=2, example="[1, 2, 3]")


def _is_number(value: Any) -> bool:
    return finite_number(value)
