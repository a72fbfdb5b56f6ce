"""The ablation study spec (`ablations/*.yaml`): a base config, factors with levels, seeds, a design."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from study.config import Hyperparameter, TrialConfig
from study.config.factors import is_int
from study.core.errors import SpecError
from study.spec.confirm import ConfirmSpec, parse_confirm
from study.spec.designs import DESIGNS, Design, Level, Trial, expand, unique
from study.spec.fields import STUDY_WIDE_FIELDS, checked_field, config_error, parse_base
from study.spec.hyperparameters import Fields, check_used, parse_hyperparameters, unknown_factor
from study.spec.ray_resources import RayResources, parse_ray_resources
from study.spec.region import parse_region
from study.spec.reading import (check_top_level, int_value, read_yaml, reject_unknown, seed_list, text_value)
from study.spec.tune_each_arm import TuneEachArm, parse_tune_each_arm

TOP_LEVEL_KEYS = ("name", "description", "seeds", "base", "design", "factors", "steps_per_execution",
                  "sample_size", "sample_seed", "hyperparameters", "confirm", "ray", "region",
                  "tune_each_arm") + STUDY_WIDE_FIELDS


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
    tune_each_arm: TuneEachArm | None = None  # each arm's nuisance hyperparameters tuned first (study.spec.arms)
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
    name = check_top_level(raw, source, TOP_LEVEL_KEYS, default_name)
    design = raw.get("design", "full_factorial")
    if design not in DESIGNS:
        raise SpecError(source, "design", f"{design!r} is not allowed; allowed values: {', '.join(DESIGNS)}")
    sample_size, sample_seed = _parse_sample(source, raw, design)
    fields = Fields(parse_hyperparameters(source, raw.get("hyperparameters")))
    seeds = seed_list(source, "seeds", raw.get("seeds", [0]))
    factors = _parse_factors(source, raw.get("factors", {}), fields)
    spec = StudySpec(
        name=name,
        source=source,
        base=parse_base(source, raw, fields=fields),
        seeds=seeds,
        design=design,
        factors=factors,
        steps_per_execution=int_value(source, "steps_per_execution", raw.get("steps_per_execution", 128), low=1),
        description=text_value(source, "description", raw.get("description", "")),
        sample_size=sample_size,
        sample_seed=sample_seed,
        confirm=parse_confirm(source, raw.get("confirm"), seeds),
        raw=raw,
        hyperparameters=fields.declared,
        ray=parse_ray_resources(source, raw.get("ray")),
        region=parse_region(source, raw.get("region"), factors),
    )
    tune = parse_tune_each_arm(source, raw.get("tune_each_arm"), fields, factors, spec.base, seeds,
                               spec.confirm.seeds if spec.confirm else ())
    spec = replace(spec, tune_each_arm=tune)
    _check_every_config(spec)
    check_used(source, fields.declared, {t.config.model for t in spec.trials()})
    return spec


def _parse_sample(source: str, raw: dict, design: str) -> tuple[int, int]:
    """sample_size / sample_seed belong to the random_subset design only."""
    if design != "random_subset":
        for key in ("sample_size", "sample_seed"):
            if key in raw:
                raise SpecError(source, key, f"only applies to design random_subset (design is {design})")
        return 0, 0
    size = raw.get("sample_size")
    if not is_int(size) or size < 1:
        raise SpecError(source, "sample_size", f"{size!r} must be an integer >= 1 (design random_subset needs it)")
    return size, int_value(source, "sample_seed", raw.get("sample_seed", 0), low=0)


def _parse_factors(source: str, raw: Any, fields: Fields) -> dict[str, tuple[Level, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(source, "factors", "must be a mapping of factor name to a list of levels")
    factors: dict[str, tuple[Level, ...]] = {}
    for factor, levels in raw.items():
        where = f"factors.{factor}"
        if factor not in fields.names:
            raise SpecError(source, where, unknown_factor(factor, fields))
        if not isinstance(levels, list) or not levels:
            raise SpecError(source, where, "must be a non-empty list of levels")
        parsed = tuple(_parse_level(source, f"{where}[{i}]", factor, lv, fields) for i, lv in enumerate(levels))
        labels = [lv.label for lv in parsed]
        if len(set(labels)) != len(labels):
            raise SpecError(source, where, f"levels {labels} repeat a label; each level once")
        factors[factor] = parsed
    return factors


def _parse_level(source: str, where: str, factor: str, level: Any, fields: Fields) -> Level:
    """A level is a plain value of the factor's field, or {label: {field: value, ...}}."""
    if isinstance(level, dict):
        if len(level) != 1:
            raise SpecError(source, where, "a compound level must be a single {label: {field: value}} mapping")
        (label, values), = level.items()
        if not isinstance(values, dict) or not values:
            raise SpecError(source, f"{where}.{label}", "must be a non-empty mapping of config fields to values")
        reject_unknown(source, f"{where}.{label}", values, fields.names)
        if factor not in values:
            raise SpecError(source, f"{where}.{label}", f"must set the factor's own field {factor!r}")
        typed = {n: fields.checked(source, f"{where}.{label}.{n}", n, v) for n, v in values.items()}
        return Level(label=str(label), values=typed)
    value = fields.checked(source, where, factor, level)
    return Level(label=str(value).lower() if isinstance(value, bool) else str(value), values={factor: value})


def _check_every_config(spec: StudySpec) -> None:
    """Cross-field checks on each generated config, before any training starts."""
    for trial in spec.trials():
        problem = config_error(trial.config)
        if problem:
            levels = ", ".join(f"{f}={lv}" for f, lv in trial.levels.items()) or "base"
            raise SpecError(spec.source, "factors" if trial.levels else "base", f"{problem} (in trial {levels})")
