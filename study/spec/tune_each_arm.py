"""The `tune_each_arm` section of a study spec: every arm at its own tuned nuisance hyperparameters.

An ablation that compares two choices at one fixed learning rate compares two learning-rate choices as
much as two techniques (Melis et al. 2018; Choi et al. 2019; Sivaprasad et al. 2020). With this section
each arm (a config of the main design, or with `arms:` each combination of the named factors' levels,
the rest at their base) has its nuisance hyperparameters tuned on seeds of their own; the study's trials
then run each arm at its tuned values on the study's seeds, which played no part in the tuning.

```yaml
tune_each_arm:
  learning_rate: {low: 1.0e-4, high: 1.0, log: true}   # any numeric field or declared hyperparameter
  trials: 8            # per arm (grid: 8 log-spaced points; over d fields n**d == trials)
  seeds: [100, 101]    # tuning seeds, none of `seeds` or `confirm.seeds`
  sampler: grid        # or tpe (sequential per arm, median pruning)
  arms: [optimizer, schedule]   # optional; default: every config of the design is an arm
  compare_fixed: true  # also run the design at the spec's fixed values (the side-by-side report)
```
Entry point: `parse_tune_each_arm` (called once by study.spec.study_spec.parse_spec).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from study.config import TrialConfig, searchable_fields
from study.core.errors import SpecError
from study.spec.designs import Level
from study.spec.fields import config_error
from study.spec.hyperparameters import Fields
from study.spec.reading import int_value, seed_list
from study.spec.tune_spec import Param
from study.spec.tune_spec import _parse_param as parse_range  # one range syntax for `tune` and `tune_each_arm`

KEY = "tune_each_arm"
OPTIONS = ("trials", "seeds", "sampler", "arms", "compare_fixed")
SAMPLERS = ("grid", "tpe")
EXAMPLE = "e.g. {learning_rate: {low: 1.0e-4, high: 1.0, log: true}, trials: 8, seeds: [100, 101]}"


@dataclass(frozen=True)
class TuneEachArm:
    """What is tuned per arm (`space`, spec order), how many points per arm, on which seeds, by which sampler."""

    space: dict[str, Param]
    trials: int
    seeds: tuple[int, ...]
    sampler: str = "grid"
    arms: tuple[str, ...] | None = None  # factors whose level combinations are the arms; None: every config
    compare_fixed: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.space)

    def per_field(self) -> int:
        """Grid points per tuned field: `trials` is their product (n ** d)."""
        return round(self.trials ** (1 / len(self.space)))

    def grid(self) -> list[dict[str, Any]]:
        """A grid's points in order (the first field outermost; each field log- or evenly spaced, ends included)."""
        names = list(self.space)
        axes = [self.space[n].grid(self.per_field()) for n in names]
        return [dict(zip(names, values)) for values in itertools.product(*axes)]


def parse_tune_each_arm(source: str, raw: Any, fields: Fields, factors: dict[str, tuple[Level, ...]],
                        base: TrialConfig, seeds: tuple[int, ...], confirm_seeds: tuple[int, ...] = ()
                        ) -> TuneEachArm | None:
    """The validated section (None when absent): every problem a SpecError naming `tune_each_arm.<key>`."""
    if raw is None:
        return None
    tunable = searchable_fields() + tuple(n for n, h in fields.declared.items() if h.factor.numeric)
    if not isinstance(raw, dict):
        raise SpecError(source, KEY, f"must be a mapping of the fields to tune and options, {EXAMPLE}")
    space: dict[str, Param] = {}
    for name, body in raw.items():
        where = f"{KEY}.{name}"
        if name in OPTIONS:
            continue
        if name not in tunable:
            kind = "is not numeric; " if name in fields.names else "unknown key; "
            raise SpecError(source, where, f"{kind}allowed keys: {', '.join(OPTIONS)} or a numeric field to tune: "
                                           f"{', '.join(tunable)}")
        _not_a_factor(source, where, name, factors)
        space[name] = parse_range(source, where, name, body, fields.factor(name))
    if not space:
        raise SpecError(source, KEY, f"names no field to tune; add one with its range, {EXAMPLE}")
    trials = int_value(source, f"{KEY}.trials", raw.get("trials", 8), low=2)
    if "seeds" not in raw:
        raise SpecError(source, f"{KEY}.seeds", "is required: the seeds the arms are tuned on, none of the study's "
                                                "own seeds, e.g. [100, 101]")
    tuning_seeds = seed_list(source, f"{KEY}.seeds", raw["seeds"], example="[100, 101]")
    for other, key in ((seeds, "seeds"), (confirm_seeds, "confirm.seeds")):
        reused = sorted(set(tuning_seeds) & set(other))
        if reused:
            raise SpecError(source, f"{KEY}.seeds", f"{reused} repeat {key} {list(other)}; tuning seeds must be new, "
                                                    "so the values are chosen on data the comparison does not use")
    sampler = raw.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise SpecError(source, f"{KEY}.sampler", f"{sampler!r} is not allowed; allowed values: {', '.join(SAMPLERS)}")
    if sampler == "grid" and round(trials ** (1 / len(space))) ** len(space) != trials:
        n = max(2, round(trials ** (1 / len(space))))
        raise SpecError(source, f"{KEY}.trials", f"{trials} is not a power {len(space)} of an integer: a grid over "
                                                 f"{len(space)} fields has n**{len(space)} points (e.g. "
                                                 f"{n ** len(space)}); or use sampler: tpe")
    compare_fixed = raw.get("compare_fixed", True)
    if not isinstance(compare_fixed, bool):
        raise SpecError(source, f"{KEY}.compare_fixed", f"{compare_fixed!r} must be a boolean (true or false)")
    tune = TuneEachArm(space=space, trials=trials, seeds=tuning_seeds, sampler=sampler,
                       arms=_parse_arms(source, raw.get("arms"), factors), compare_fixed=compare_fixed)
    _check_corners(source, tune, base, factors)
    return tune


def _not_a_factor(source: str, where: str, name: str, factors: dict[str, tuple[Level, ...]]) -> None:
    """A tuned field takes each arm's tuned value: it cannot also be a factor or be set by a level."""
    if name in factors:
        raise SpecError(source, where, f"is also a factor of the design (factors.{name}); a tuned field takes each "
                                       "arm's tuned value, so remove it from factors or from tune_each_arm")
    for factor, levels in factors.items():
        for level in levels:
            if name in level.values:
                raise SpecError(source, where, f"is set by level {level.label!r} of factors.{factor}; a tuned field "
                                               "takes each arm's tuned value, so no level may set it (its fixed "
                                               "value comes from base)")


def _parse_arms(source: str, raw: Any, factors: dict[str, tuple[Level, ...]]) -> tuple[str, ...] | None:
    if raw is None:
        return None
    key = f"{KEY}.arms"
    if not isinstance(raw, list) or not raw:
        raise SpecError(source, key, "must be a non-empty list of factors of the design, e.g. [optimizer, schedule]")
    for i, name in enumerate(raw):
        if name not in factors:
            raise SpecError(source, f"{key}[{i}]", f"{name!r} is not a factor of the design; allowed: "
                                                   f"{', '.join(factors) or '(the design has no factors)'}")
    if len(set(raw)) != len(raw):
        raise SpecError(source, key, f"{raw} repeats a factor; name each once")
    return tuple(raw)


def _check_corners(source: str, tune: TuneEachArm, base: TrialConfig, factors: dict[str, tuple[Level, ...]]) -> None:
    """Cross-field checks (warm-up vs epochs, ...) at the ends of every tuned range, on every level."""
    ends = [dict(zip(tune.space, corner)) for corner in
            itertools.product(*((p.low, p.high) for p in tune.space.values()))]
    levels = [lv for lvs in factors.values() for lv in lvs] or [Level("base", {})]
    for level in levels:
        for corner in ends:
            problem = config_error(base.with_values({**level.values, **corner}))
            if problem:
                where = ", ".join(f"{n}={v}" for n, v in corner.items())
                raise SpecError(source, KEY, f"{problem} (at {where} with level {level.label!r})")
