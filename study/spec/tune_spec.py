"""Parse and validate a tuning spec (YAML) before any trial starts.

A tuning spec names a base config (`base`, or `base_from` a finished ablation
study), the numeric fields to search and how (sampler, pruner, budget). Like the
ablation spec, every error names the file and the key, unknown keys are errors,
and config values are checked by the same field types the ablation spec uses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import Field, Strict, StrictStr, create_model, model_validator

from study.config import Hyperparameter, TrialConfig
from study.config.user_code import code_of
from study.core.errors import SpecError
from study.spec.fields import STUDY_WIDE_FIELDS, Fields, checked_field, config_error, study_wide
from study.spec.hyperparameters import Hyperparameters, check_used
from study.spec.ray_resources import RayResources
from study.spec.schema import Boolean, Name, Problem, Section, Text, choice, integer, read_yaml, says, seed_list
from study.spec.schema import validate
from study.spec.search_space import PRUNERS, SAMPLERS, Choice, Param, choice_of, parse_enqueue, parse_space
from study.spec.adaptive import refuse_in_tuning

__all__ = ["Choice", "Param", "TuneSpec", "check_configs", "load_tune_spec", "parse_tune_spec", "with_base"]

# Objective: the kept model's validation metric (epoch with the lowest val_loss).
METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}
DIRECTIONS = ("maximize", "minimize")
Seconds = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False), says("{value} must be null or a number of seconds > 0")]
StudyName = Annotated[StrictStr, Field(min_length=1), says("{value} must be the name of a finished ablation study")]


class TuneKeys(Section):
    """The keys of a tuning spec, one field each (a new key is one field here and its use in `parse_tune_spec`).
    `base`, `search_space` and `enqueue` are checked once the spec's own hyperparameters are known."""

    name: Name = ""  # "": the file's name
    description: Text = ""
    base: Any = None
    base_from: Optional[StudyName] = None  # noqa: UP007
    search_space: Any = None
    n_trials: integer(1) = 20
    timeout: Optional[Seconds] = None  # noqa: UP007
    sampler: choice_of(SAMPLERS) = Field("tpe", validate_default=True)
    pruner: choice_of(PRUNERS) = Field("median", validate_default=True)
    metric: choice(tuple(METRICS)) = "val_accuracy"
    direction: choice(DIRECTIONS) = None  # None: the metric's
    seed: integer(0) = 0
    retrain_seeds: seed_list(2, "[1, 2, 3]") = (1, 2, 3)  # the tuned and the base config, paired by seed
    enqueue_base: Boolean = True
    enqueue: Any = []
    steps_per_execution: integer(1) = 128
    hyperparameters: Hyperparameters = Field(default_factory=dict)
    ray: Optional[RayResources] = None  # noqa: UP007

    @model_validator(mode="after")
    def _consistent(self) -> TuneKeys:
        if self.direction not in (None, METRICS[self.metric]):
            raise Problem(f"{self.direction!r} contradicts metric {self.metric!r}, which is to "
                          f"{METRICS[self.metric]}", "direction")
        return self


TuneFile = create_model("TuneFile", __base__=TuneKeys, **study_wide())


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
    keys = validate(TuneFile, raw, source)
    name = keys.name or default_name
    if keys.base_from == name:
        raise SpecError(source, "base_from", f"must differ from the tuning study's own name {name!r}")
    fields = Fields(keys.hyperparameters)
    top = {n: getattr(keys, n) for n in STUDY_WIDE_FIELDS if n in keys.model_fields_set}
    base = fields.base(source, keys.base, top)  # validates `base` and the study-wide top-level fields
    overrides = {n: getattr(base, n) for n in [*(keys.base or {}), *top]}  # what `base_from`'s config is overridden with
    space = parse_space(source, keys.search_space, fields)
    spec = TuneSpec(
        name=name,
        source=source,
        base=base.replace(seed=keys.seed),
        space=space,
        n_trials=keys.n_trials,
        timeout=keys.timeout,
        sampler=keys.sampler,
        pruner=keys.pruner,
        metric=keys.metric,
        direction=keys.direction or METRICS[keys.metric],
        retrain_seeds=keys.retrain_seeds,
        enqueue_base=keys.enqueue_base,
        enqueue=parse_enqueue(source, keys.enqueue, space),
        steps_per_execution=keys.steps_per_execution,
        description=keys.description,
        base_from=keys.base_from,
        base_overrides=overrides,
        raw=raw,
        hyperparameters=fields.declared,
        ray=keys.ray or RayResources(),
    )
    if keys.base_from is None:  # else the model comes from the ablation study
        check_used(source, fields.declared, {code_of(spec.base)})
    _check_choices(spec)
    if keys.base_from is None:
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


def _check_choices(spec: TuneSpec) -> None:
    if spec.sampler.name == "grid" and spec.sampler.options["points"] < 2:
        raise SpecError(spec.source, "sampler.points", f"{spec.sampler.options['points']} must be >= 2")
    if spec.pruner.name == "hyperband":
        if spec.pruner.options["min_resource"] < 1:
            raise SpecError(spec.source, "pruner.min_resource", "must be an integer >= 1 (epochs)")
        if spec.pruner.options["reduction_factor"] < 2:
            raise SpecError(spec.source, "pruner.reduction_factor", "must be an integer >= 2")
