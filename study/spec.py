"""Parse and validate a study spec (YAML) before anything is trained or recorded.

Every error names the file, the key path inside it and the allowed values, so a
user can fix the spec without reading our code. Unknown keys are errors, never
silently ignored (nanoGPT's configurator rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from study.config import DEFAULTS, FIELD_NAMES, TrialConfig, allowed_values

DESIGNS = ("full_factorial", "one_at_a_time", "random_subset")

# Top-level keys that fill the base config (the study-wide settings).
STUDY_WIDE_FIELDS = ("dataset", "epochs", "batch_size", "validation", "train_subset", "backend")
TOP_LEVEL_KEYS = (
    "name",
    "description",
    "seeds",
    "base",
    "design",
    "factors",
    "steps_per_execution",
    "sample_size",
    "sample_seed",
) + STUDY_WIDE_FIELDS

# MNIST: 60k official training images; holdout keeps the last 10k for validation.
TRAIN_IMAGES = {"holdout": 50_000, "test": 60_000}


class SpecError(ValueError):
    """An invalid spec; str() is the full user-facing message."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {message}")


@dataclass(frozen=True)
class Level:
    """One level of a factor: a label and the config fields it sets."""

    label: str
    values: dict[str, Any]


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
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def reference_level(self, factor: str) -> Level:
        """The first listed level is the reference every other level is compared to."""
        return self.factors[factor][0]


# --------------------------------------------------------------------------- values


def field_error(name: str, value: Any) -> str | None:
    """Why `value` is not valid for config field `name`, or None if it is."""
    choices = allowed_values(name)
    default = DEFAULTS[name]
    if choices is not None:
        if value not in choices:
            return f"{value!r} is not allowed; allowed values: {', '.join(map(str, choices))}"
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return f"{value!r} must be a boolean (true or false)"
        return None
    if name == "train_subset":
        if value is None:
            return None
        if not _is_int(value) or not 1 <= value <= TRAIN_IMAGES["test"]:
            return f"{value!r} must be null or an integer in [1, {TRAIN_IMAGES['test']}]"
        return None
    if isinstance(default, int):
        low = INT_MINIMUM.get(name, 1)
        if not _is_int(value) or value < low:
            return f"{value!r} must be an integer >= {low}"
        return None
    if isinstance(default, float):
        if not _is_number(value):
            return f"{value!r} must be a number"
        low, high, text = FLOAT_RANGES[name]
        if not (low(value) and high(value)):
            return f"{value!r} is out of range; allowed: {text}"
        return None
    return None


INT_MINIMUM = {
    "warmup_epochs": 0,
    "plateau_patience": 0,
    "early_stopping_patience": 0,
    "seed": 0,
}

FLOAT_RANGES = {
    "dropout": (lambda v: v >= 0, lambda v: v < 1, "0 <= dropout < 1"),
    "learning_rate": (lambda v: v > 0, lambda v: math.isfinite(v), "learning_rate > 0 (finite)"),
    "plateau_factor": (lambda v: v > 0, lambda v: v < 1, "0 < plateau_factor < 1"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_error(config: TrialConfig) -> str | None:
    """Cross-field checks that only make sense on a complete config."""
    if config.schedule.startswith("warmup") and config.epochs <= config.warmup_epochs:
        return (
            f"schedule {config.schedule} needs epochs > warmup_epochs "
            f"(got epochs={config.epochs}, warmup_epochs={config.warmup_epochs})"
        )
    if config.train_subset is not None and config.train_subset > TRAIN_IMAGES[config.validation]:
        return (
            f"train_subset={config.train_subset} exceeds the {TRAIN_IMAGES[config.validation]} "
            f"training images available with validation={config.validation}"
        )
    return None


def coerce_field(source: str, key: str, name: str, value: Any) -> Any:
    """Validate one config field value (ints given as 1.0 stay errors); return it typed."""
    if isinstance(DEFAULTS[name], float) and _is_int(value):
        value = float(value)
    problem = field_error(name, value)
    if problem:
        raise SpecError(source, key, problem)
    return value


# --------------------------------------------------------------------------- parsing


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a spec file (study or tune); SpecError if missing or malformed."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SpecError(source, "<file>", "no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(source, "<yaml>", f"not valid YAML: {exc}") from exc


def check_top_level(raw: Any, source: str, allowed: tuple[str, ...], default_name: str) -> str:
    """Shared first checks of every spec kind: a mapping, known keys, a valid name."""
    if not isinstance(raw, dict):
        raise SpecError(source, "<top level>", "must be a mapping of keys to values")
    _reject_unknown(source, "<top level>", raw, allowed)
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise SpecError(source, "name", f"{name!r} must be a non-empty string of letters, digits, '-' or '_'")
    return name


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a spec file; raise SpecError with a precise message."""
    return parse_spec(read_yaml(path), source=str(path), default_name=Path(path).stem)


def parse_spec(raw: Any, source: str = "<spec>", default_name: str = "study") -> StudySpec:
    name = check_top_level(raw, source, TOP_LEVEL_KEYS, default_name)

    base = _parse_base(source, raw)
    seeds = _parse_seeds(source, raw.get("seeds", [0]))
    design = raw.get("design", "full_factorial")
    if design not in DESIGNS:
        raise SpecError(source, "design", f"{design!r} is not allowed; allowed values: {', '.join(DESIGNS)}")
    factors = _parse_factors(source, raw.get("factors", {}))
    spe = raw.get("steps_per_execution", 128)
    if not _is_int(spe) or spe < 1:
        raise SpecError(source, "steps_per_execution", f"{spe!r} must be an integer >= 1")
    sample_size, sample_seed = _parse_sample(source, raw, design)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(source, "description", "must be a string")

    spec = StudySpec(
        name=name,
        source=source,
        base=base,
        seeds=seeds,
        design=design,
        factors=factors,
        steps_per_execution=spe,
        description=description,
        sample_size=sample_size,
        sample_seed=sample_seed,
        raw=raw,
    )
    _check_every_config(spec)
    return spec


def _parse_sample(source: str, raw: dict, design: str) -> tuple[int, int]:
    """sample_size / sample_seed belong to the random_subset design only."""
    if design != "random_subset":
        for key in ("sample_size", "sample_seed"):
            if key in raw:
                raise SpecError(source, key, f"only applies to design random_subset (design is {design})")
        return 0, 0
    size, seed = raw.get("sample_size"), raw.get("sample_seed", 0)
    if not _is_int(size) or size < 1:
        raise SpecError(source, "sample_size", f"{size!r} must be an integer >= 1 (design random_subset needs it)")
    if not _is_int(seed) or seed < 0:
        raise SpecError(source, "sample_seed", f"{seed!r} must be an integer >= 0")
    return size, seed


def _reject_unknown(source: str, where: str, mapping: dict, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            raise SpecError(source, f"{where}.{key}" if where != "<top level>" else str(key),
                            f"unknown key; allowed keys: {', '.join(allowed)}")


def _parse_base(source: str, raw: dict) -> TrialConfig:
    base_raw = raw.get("base", {}) or {}
    if not isinstance(base_raw, dict):
        raise SpecError(source, "base", "must be a mapping of config fields to values")
    settable = tuple(n for n in FIELD_NAMES if n != "seed")
    _reject_unknown(source, "base", base_raw, settable)
    values: dict[str, Any] = {}
    for name, value in base_raw.items():
        if name in STUDY_WIDE_FIELDS and name in raw:
            raise SpecError(source, f"base.{name}", "is also set at the top level; set it in one place")
        values[name] = coerce_field(source, f"base.{name}", name, value)
    for name in STUDY_WIDE_FIELDS:
        if name in raw:
            values[name] = coerce_field(source, name, name, raw[name])
    return TrialConfig(**values)


def _parse_seeds(source: str, seeds: Any) -> tuple[int, ...]:
    if not isinstance(seeds, list) or not seeds:
        raise SpecError(source, "seeds", "must be a non-empty list of integers >= 0, e.g. [0, 1, 2]")
    for i, seed in enumerate(seeds):
        if not _is_int(seed) or seed < 0:
            raise SpecError(source, f"seeds[{i}]", f"{seed!r} must be an integer >= 0")
    if len(set(seeds)) != len(seeds):
        raise SpecError(source, "seeds", f"{seeds} has duplicates; each seed once")
    return tuple(seeds)


def _parse_factors(source: str, raw: Any) -> dict[str, tuple[Level, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(source, "factors", "must be a mapping of factor name to a list of levels")
    settable = tuple(n for n in FIELD_NAMES if n != "seed")
    factors: dict[str, tuple[Level, ...]] = {}
    for factor, levels in raw.items():
        where = f"factors.{factor}"
        if factor not in settable:
            raise SpecError(source, where, f"unknown factor; allowed factors: {', '.join(settable)}")
        if not isinstance(levels, list) or not levels:
            raise SpecError(source, where, "must be a non-empty list of levels")
        parsed = tuple(_parse_level(source, f"{where}[{i}]", factor, lv) for i, lv in enumerate(levels))
        labels = [lv.label for lv in parsed]
        if len(set(labels)) != len(labels):
            raise SpecError(source, where, f"levels {labels} repeat a label; each level once")
        factors[factor] = parsed
    return factors


def _parse_level(source: str, where: str, factor: str, level: Any) -> Level:
    """A level is a plain value of the factor's field, or {label: {field: value, ...}}."""
    if isinstance(level, dict):
        if len(level) != 1:
            raise SpecError(source, where, "a compound level must be a single {label: {field: value}} mapping")
        (label, values), = level.items()
        if not isinstance(values, dict) or not values:
            raise SpecError(source, f"{where}.{label}", "must be a non-empty mapping of config fields to values")
        settable = tuple(n for n in FIELD_NAMES if n != "seed")
        _reject_unknown(source, f"{where}.{label}", values, settable)
        if factor not in values:
            raise SpecError(source, f"{where}.{label}", f"must set the factor's own field {factor!r}")
        typed = {n: coerce_field(source, f"{where}.{label}.{n}", n, v) for n, v in values.items()}
        return Level(label=str(label), values=typed)
    value = coerce_field(source, where, factor, level)
    return Level(label=str(value).lower() if isinstance(value, bool) else str(value), values={factor: value})


def _check_every_config(spec: StudySpec) -> None:
    """Cross-field checks on each generated config, before any training starts."""
    from study.designs import expand  # local import: designs depends on spec types

    for trial in expand(spec):
        problem = config_error(trial.config)
        if problem:
            levels = ", ".join(f"{f}={lv}" for f, lv in trial.levels.items()) or "base"
            raise SpecError(spec.source, "factors" if trial.levels else "base", f"{problem} (in trial {levels})")
