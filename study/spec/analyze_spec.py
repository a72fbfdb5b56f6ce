"""What `study analyze` reads from an existing MLflow experiment: options or a small YAML file, same names.

    experiment: my-sweep          # the MLflow experiment
    factors: [lr, batch_size]     # params whose values are the levels (or "lr,batch_size")
    seed_param: seed              # a param, else a tag, holding each run's seed
    metric: val_accuracy          # the outcome (its last logged value per run)
    lower_is_better: false        # true for a loss: the analysis then reads its negative
    chance: 0.1                   # optional: a run at or below chance + margin did not learn
    reference: {lr: "0.001"}      # optional: the level each effect is measured against

Keys may be written with '-' or '_' (`seed-param` as on the command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, Strict, StrictBool, StrictStr, StringConstraints, model_validator

from study.core.errors import SpecError
from study.spec.schema import Problem, Section, check, read_yaml, says, validate

KEYS = ("experiment", "factors", "seed_param", "metric", "higher_is_better", "lower_is_better", "chance", "margin",
        "reference", "tracking_uri", "reports_dir", "name")
COMMAND_LINE = "command line"


def _text(required: bool) -> Any:
    """A string (stripped); a required one is not empty."""
    return Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=int(required)), says(
        lambda value: "is required" if value in (None, "") else f"{value!r} must be a non-empty string")]


def _listed(value: Any) -> Any:
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def _once(names: list[str]) -> tuple[str, ...]:
    if len(set(names)) != len(names):
        raise Problem(f"{names} names a param twice; each once")
    return tuple(names)


def _pairs(value: Any) -> dict:
    """`{factor: level}` from a mapping or "a=lo,b=x"."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(p) != 2 for p in pairs):
            raise Problem(f"{value!r} must be factor=level pairs, e.g. a=lo,b=x")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict):
        raise Problem(f"{value!r} must map factors to their reference level")
    return value


Required, Folder = _text(required=True), _text(required=False)
Names = Annotated[list[Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]],
                  Field(min_length=1), check(_once), says(
                      "{value} must be a non-empty list of param names, e.g. lr,batch_size", whole=True),
                  BeforeValidator(_listed)]
TrueFalse = Optional[Annotated[StrictBool, says("{value} must be true or false")]]  # noqa: UP007
Chance = Optional[Annotated[float, Strict(), Field(allow_inf_nan=False), says(  # noqa: UP007
    "{value} must be a finite number (the metric's value at chance)")]]
Margin = Optional[Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False), says(  # noqa: UP007
    "{value} must be a finite number >= 0")]]
Where = Optional[Annotated[StrictStr, says("{value} must be a string")]]  # noqa: UP007


class AnalyzeKeys(Section):
    """The keys of `study analyze` (options or file), one field each."""

    experiment: Required = Field(None, validate_default=True)
    factors: Names = Field(None, validate_default=True)
    seed_param: Required = "seed"
    metric: Required = Field(None, validate_default=True)
    higher_is_better: TrueFalse = None
    lower_is_better: TrueFalse = None
    chance: Chance = None
    margin: Margin = None
    reference: Annotated[dict, BeforeValidator(_pairs)] = {}
    tracking_uri: Where = None
    reports_dir: Where = None
    name: Folder = ""

    @model_validator(mode="after")
    def _consistent(self) -> AnalyzeKeys:
        if self.seed_param in self.factors:
            raise Problem(f"{self.seed_param!r} is the seed param; a factor is a param other than the seed", "factors")
        if self.higher_is_better is not None and self.higher_is_better == self.lower_is_better:
            raise Problem("contradicts higher_is_better; give one of them", "lower_is_better")
        if self.margin is not None and self.chance is None:
            raise Problem("only applies with chance (a run fails at or below chance + margin)", "margin")
        unknown = [k for k in self.reference if k not in self.factors]
        if unknown:
            raise Problem(f"{unknown[0]!r} is not one of the factors ({', '.join(self.factors)})", "reference")
        name = self.folder
        if not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise Problem(f"{name!r} must be letters, digits, '-', '_' or '.' (a folder name)", "name")
        return self

    @property
    def folder(self) -> str:
        """The report's folder: `name`, else the experiment's name as a folder name (MLflow allows '/' and spaces)."""
        return self.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", self.experiment).strip("_.") or "experiment"


@dataclass(frozen=True)
class AnalyzeSpec:
    experiment: str
    factors: tuple[str, ...]
    metric: str
    seed_param: str = "seed"
    lower_is_better: bool = False
    chance: float | None = None  # in the metric's own units (a loss's chance level for a loss)
    margin: float | None = None  # above chance that still counts as not learning; None: the analysis default
    reference: dict[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None
    reports_dir: Path = Path("reports")
    name: str = ""  # the report's folder under reports_dir
    source: str = COMMAND_LINE


def load_analyze_spec(path: str | Path | None, options: dict[str, Any] | None = None) -> AnalyzeSpec:
    """The spec from a YAML file (if any) with the command line's options laid over it."""
    raw = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else COMMAND_LINE
    if not isinstance(raw, dict):
        raise SpecError(source, "<top level>", "must be a mapping of keys to values")
    raw = {str(k).replace("-", "_"): v for k, v in raw.items()}
    given = {k: str(v) if isinstance(v, Path) else v for k, v in (options or {}).items() if v is not None}
    return parse_analyze_spec({**raw, **given}, source, from_options=set(given))


def parse_analyze_spec(raw: dict[str, Any], source: str = COMMAND_LINE, from_options: set[str] = frozenset()
                       ) -> AnalyzeSpec:
    try:
        keys = validate(AnalyzeKeys, raw, source)
    except SpecError as exc:  # an option's error names the option
        if exc.key not in from_options and source != COMMAND_LINE:
            raise
        message = str(exc)[len(f"{source}: {exc.key}: "):]
        raise SpecError(source, f"--{exc.key.replace('_', '-')}", message) from None
    return AnalyzeSpec(
        experiment=keys.experiment, factors=keys.factors, metric=keys.metric, seed_param=keys.seed_param,
        lower_is_better=bool(keys.lower_is_better) if keys.lower_is_better is not None else (
            keys.higher_is_better is False),
        chance=keys.chance, margin=keys.margin, reference={str(k): str(v) for k, v in keys.reference.items()},
        tracking_uri=keys.tracking_uri or None, reports_dir=Path(keys.reports_dir or "reports"), name=keys.folder,
        source=source)
