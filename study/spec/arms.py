"""The arms of a `tune_each_arm` study, their tuning trials, and the spec at the tuned values.

An arm is what gets its own tuned values: by default every config of the main design; with
`arms: [f, ...]` each combination of those factors' levels, the other fields at their base (every
config of the design with those levels then runs at that arm's values). Everything here is a pure
function of the spec (and of the tuned values), so every worker and the report agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from study.config import TrialConfig
from study.spec.designs import Trial, unique
from study.spec.study_spec import StudySpec
from study.spec.tune_each_arm import TuneEachArm

STAGE_TUNE, STAGE_FIXED, STAGE_MAIN, STAGE_CONFIRM = "tune", "fixed", "main", "confirm"


@dataclass(frozen=True)
class Arm:
    label: str  # "optimizer=adam, schedule=constant" ("base" in a study without factors)
    levels: dict[str, str]  # the arm's factors and their level labels
    config: TrialConfig  # the arm's config at seed 0, tuned fields at the spec's fixed values


def tuning(spec: StudySpec) -> TuneEachArm:
    if spec.tune_each_arm is None:
        raise ValueError(f"study {spec.name} has no tune_each_arm section")
    return spec.tune_each_arm


def _arm_factors(spec: StudySpec) -> list[str]:
    return list(tuning(spec).arms or spec.factors)


def _arm_fields(spec: StudySpec) -> set[str] | None:
    """The config fields an arm is defined by (None: the whole config)."""
    chosen = tuning(spec).arms
    if chosen is None:
        return None
    return {name for factor in chosen for level in spec.factors[factor] for name in level.values}


def arm_for(spec: StudySpec, config: TrialConfig) -> Arm:
    """The arm a config of the design (any seed, any tuned values) belongs to."""
    values = config.values()
    fields = _arm_fields(spec)
    tuned = dict(zip(tuning(spec).fields, (getattr(spec.base, f) for f in tuning(spec).fields)))
    own = config.with_values(tuned) if fields is None else spec.base.with_values({f: values[f] for f in fields})
    levels = {}
    for factor in _arm_factors(spec):
        match = next((lv for lv in spec.factors[factor]
                      if all(_same(values[f], v) for f, v in lv.values.items())), None)
        value = values[factor]
        levels[factor] = match.label if match else f"{str(value).lower() if isinstance(value, bool) else value}*"
    label = ", ".join(f"{f}={lv}" for f, lv in levels.items()) or "base"
    return Arm(label=label, levels=levels, config=own.replace(seed=0))


def arms(spec: StudySpec) -> list[Arm]:
    """Every arm of the study, in the design's order."""
    found: dict[str, Arm] = {}
    for trial in _design(spec):
        arm = arm_for(spec, trial.config)
        found.setdefault(arm.label, arm)
    return list(found.values())


def tuning_trials(spec: StudySpec, arm: Arm, point: dict[str, Any]) -> list[Trial]:
    """One point of an arm's search: the arm at those values on each tuning seed."""
    config = arm.config.with_values(point)
    return [Trial(config=config.replace(seed=seed), levels=dict(arm.levels)) for seed in tuning(spec).seeds]


def fixed_trials(spec: StudySpec) -> list[Trial]:
    """The design at the spec's own fixed values (run beside the tuned trials when `compare_fixed`)."""
    untuned = replace(spec, tuned=None)
    return untuned.unique_trials() if tuning(spec).compare_fixed else []


def tuned_spec(spec: StudySpec, values: dict[str, dict[str, Any]]) -> StudySpec:
    """The spec whose trials run each arm at its tuned values (`values`: arm label -> field -> value)."""
    tuned = {}
    for trial in _design(spec):
        seedless = trial.config.replace(seed=0)
        tuned[seedless.key()] = dict(values[arm_for(spec, seedless).label])
    return replace(spec, tuned=tuned)


def _design(spec: StudySpec) -> list[Trial]:
    """The design's distinct configs at the first seed, untuned."""
    first = replace(spec, seeds=spec.seeds[:1], tuned=None)
    return unique(first.trials())


def _same(value: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(float(value) - want) <= 1e-9 * max(abs(want), 1e-12)
    return value == want
