"""The ablation study spec (`ablations/*.yaml`): a base config, factors with levels, seeds, a design."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from study.config import Hyperparameter, TrialConfig
from study.config.user_code import code_of
from study.core.companions import companion
from study.core.errors import SpecError
from study.spec.adaptive import AdaptiveKeys, AdaptiveSpec, parse_adaptive
from study.spec.confirm import ConfirmSpec
from study.spec.designs import DESIGNS, Design, Level, Trial, expand, unique
from study.spec.fields import STUDY_WIDE_FIELDS, Fields, checked_field, config_error, study_wide
from study.spec.hyperparameters import Hyperparameters, check_used
from study.spec.ray_resources import RayResources
from study.spec.region import parse_region
from study.spec.tune_each_arm import TuneEachArm, parse_tune_each_arm
from study.spec.schema import Boolean, Name, Problem, Section, Text, choice, integer, read_yaml, seed_list, validate


_ABSENT = object()  # sample_size not written: needed for random_subset, refused for the other designs


class StudyKeys(Section):
    """The keys of a study spec, one field each (a new key is one field here and its use in `parse_spec`).
    `base`, `factors` and `region` are checked once the spec's own hyperparameters are known (Fields)."""

    name: Name = ""  # "": the file's name
    description: Text = ""
    seeds: seed_list() = (0,)
    base: Any = None
    design: choice(tuple(DESIGNS)) = "full_factorial"
    factors: Any = None
    steps_per_execution: integer(1) = 128
    sample_size: integer(1, "{value} must be an integer >= 1 (design random_subset needs it)") = Field(
        _ABSENT, validate_default=True)
    sample_seed: integer(0) = 0
    hyperparameters: Hyperparameters = Field(default_factory=dict)
    confirm: Optional[ConfirmSpec] = None  # noqa: UP007
    ray: Optional[RayResources] = None  # noqa: UP007
    region: Any = None
    tune_each_arm: Any = None  # checked by parse_tune_each_arm once factors are known
    adaptive: Optional[AdaptiveKeys] = None  # noqa: UP007 - checked by parse_adaptive against seeds, design, confirm
    lesson: Boolean = False  # the lesson's own study: its claims, figures and first model in the report

    @field_validator("sample_size", "sample_seed", mode="wrap")
    @classmethod
    def _random_subset_only(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        design = info.data.get("design")  # None: not valid, and said so
        if design == "random_subset":
            return handler(None if value is _ABSENT else value)
        if design is not None and value is not _ABSENT:
            raise Problem(f"only applies to design random_subset (design is {design})")
        return 0

    @model_validator(mode="after")
    def _consistent(self) -> StudyKeys:
        reused = sorted(set(self.confirm.seeds) & set(self.seeds)) if self.confirm else []
        if reused:
            raise Problem(f"{reused} repeat the study's seeds {list(self.seeds)}; confirm seeds must be new, so "
                          "selection and confirmation use different data", "confirm", "seeds")
        return self


StudyFile = create_model("StudyFile", __base__=StudyKeys, **study_wide())


@dataclass(frozen=True)
class StudySpec:
    name: str
    source: str
    base: TrialConfig
    seeds: tuple[int, ...]
    design: str
    factors: dict[str, tuple[Level, ...]]
    steps_per_execution: int
    description: str = ""
    sample_size: int = 0
    sample_seed: int = 0
    confirm: ConfirmSpec | None = None  # configs re-run on new seeds after the main trials (study.spec.confirm)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    hyperparameters: dict[str, Hyperparameter] = field(default_factory=dict)  # the spec's own (`hyperparameters:`)
    ray: RayResources = RayResources()  # each Ray worker's resources under --ray (study.spec.ray_resources)
    region: dict[str, Any] = field(default_factory=dict, compare=False)  # the report's region (study.spec.region)
    adaptive: AdaptiveSpec | None = None  # seeds spent in rounds where targets are open (study.spec.adaptive)
    tune_each_arm: TuneEachArm | None = None  # each arm's nuisance hyperparameters tuned first (study.spec.arms)
    # The lesson's own study (`lesson: true`): the report adds the lesson's claims, figures and first model. Said by
    # the spec, not guessed from its model: a study of another paper's MLP on MNIST is not the lesson's.
    lesson: bool = False
    # Once tuned (study.spec.arms.tuned_spec): each design config's tuned values, by its key at seed 0.
    tuned: dict[str, dict[str, Any]] | None = field(default=None, compare=False)

    def trials(self) -> list[Trial]:
        """Every trial of the design, one per (config, seed), seeds outermost (duplicates included); each at
        its arm's tuned values once the spec is tuned."""
        trials = expand(self.design, Design(self.base, self.factors, self.sample_size, self.sample_seed), self.seeds)
        if self.tuned is None:
            return trials
        return [Trial(t.config.with_values(self.tuned[t.config.replace(seed=0).key()]), t.levels) for t in trials]

    def unique_trials(self) -> list[Trial]:
        """The trials to train: levels that produce the same config are trained once."""
        return unique(self.trials())

    def with_overrides(self, **fields: Any) -> StudySpec:
        """The spec with base fields overridden from the command line (`--backend jax`); keys follow."""
        for name, value in fields.items():
            checked_field(f"--{name}", name, name, value)
        return replace(self, base=self.base.replace(**fields)) if fields else self


def spec_hash(raw: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a spec file; raise SpecError with a precise message."""
    return parse_spec(read_yaml(path), source=str(path), default_name=Path(path).stem)


def parse_spec(raw: Any, source: str = "<spec>", default_name: str = "study") -> StudySpec:
    keys = validate(StudyFile, raw, source)
    fields = Fields(keys.hyperparameters)
    top = {name: getattr(keys, name) for name in STUDY_WIDE_FIELDS if name in keys.model_fields_set}
    factors = fields.factors(source, keys.factors)
    spec = StudySpec(
        name=keys.name or default_name,
        source=source,
        base=fields.base(source, keys.base, top),
        seeds=keys.seeds,
        design=keys.design,
        factors=factors,
        steps_per_execution=keys.steps_per_execution,
        description=keys.description,
        sample_size=keys.sample_size,
        sample_seed=keys.sample_seed,
        confirm=keys.confirm,
        raw=raw,
        hyperparameters=fields.declared,
        ray=keys.ray or RayResources(),
        region=parse_region(source, keys.region, factors),
        adaptive=parse_adaptive(source, keys.adaptive, keys.seeds, keys.design, keys.confirm),
        lesson=keys.lesson,
    )
    problem = companion("lesson").spec_problem([t.config for t in spec.trials()]) if spec.lesson else None
    if problem:
        raise SpecError(source, "lesson", problem)
    tune = parse_tune_each_arm(source, raw.get("tune_each_arm"), fields, factors, spec.base, keys.seeds,
                               spec.confirm.seeds if spec.confirm else ())
    spec = replace(spec, tune_each_arm=tune)
    _check_every_config(spec)
    check_used(source, fields.declared, {code_of(t.config) for t in spec.trials()})
    return spec


def _check_every_config(spec: StudySpec) -> None:
    """Cross-field checks on each generated config, before any training starts."""
    for trial in spec.trials():
        problem = config_error(trial.config)
        if problem:
            levels = ", ".join(f"{f}={lv}" for f, lv in trial.levels.items()) or "base"
            raise SpecError(spec.source, "factors" if trial.levels else "base", f"{problem} (in trial {levels})")
