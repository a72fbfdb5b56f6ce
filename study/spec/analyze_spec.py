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
from typing import Any

from study.core.errors import SpecError
from study.spec.reading import finite_number, read_yaml, reject_unknown

KEYS = ("experiment", "factors", "seed_param", "metric", "higher_is_better", "lower_is_better", "chance", "margin",
        "reference", "tracking_uri", "reports_dir", "name")
COMMAND_LINE = "command line"


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
    reject_unknown(source, "<top level>", raw, KEYS)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return parse_analyze_spec({**raw, **given}, source, from_options=set(given))


def parse_analyze_spec(raw: dict[str, Any], source: str = COMMAND_LINE, from_options: set[str] = frozenset()
                       ) -> AnalyzeSpec:
    def error(key: str, message: str) -> SpecError:
        shown = f"--{key.replace('_', '-')}" if key in from_options or source == COMMAND_LINE else key
        return SpecError(source, shown, message)

    def text(key: str, required: bool = True, default: str = "") -> str:
        value = raw.get(key, default)
        if value is None or (required and value == ""):
            raise error(key, "is required" if value in (None, "") else "must not be empty")
        if not isinstance(value, str) or (required and not value.strip()):
            raise error(key, f"{value!r} must be a non-empty string")
        return value.strip()

    experiment, metric = text("experiment"), text("metric")
    seed_param = text("seed_param", default="seed")
    factors = _factors(raw.get("factors"), error)
    if seed_param in factors:
        raise error("factors", f"{seed_param!r} is the seed param; a factor is a param other than the seed")
    higher, lower = raw.get("higher_is_better"), raw.get("lower_is_better")
    for key, value in (("higher_is_better", higher), ("lower_is_better", lower)):
        if value is not None and not isinstance(value, bool):
            raise error(key, f"{value!r} must be true or false")
    if higher is not None and lower is not None and higher == lower:
        raise error("lower_is_better", "contradicts higher_is_better; give one of them")
    chance, margin = raw.get("chance"), raw.get("margin")
    if chance is not None and not finite_number(chance):
        raise error("chance", f"{chance!r} must be a finite number (the metric's value at chance)")
    if margin is not None and not (finite_number(margin) and margin >= 0):
        raise error("margin", f"{margin!r} must be a finite number >= 0")
    if margin is not None and chance is None:
        raise error("margin", "only applies with chance (a run fails at or below chance + margin)")
    name = text("name", required=False) or _folder_name(experiment)
    if not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise error("name", f"{name!r} must be letters, digits, '-', '_' or '.' (a folder name)")
    return AnalyzeSpec(
        experiment=experiment, factors=factors, metric=metric, seed_param=seed_param,
        lower_is_better=bool(lower) if lower is not None else (higher is False),
        chance=float(chance) if chance is not None else None, margin=float(margin) if margin is not None else None,
        reference=_reference(raw.get("reference"), factors, error), tracking_uri=raw.get("tracking_uri") or None,
        reports_dir=Path(raw.get("reports_dir") or "reports"), name=name, source=source)


def _factors(value: Any, error) -> tuple[str, ...]:  # noqa: ANN001 - error: key, message -> SpecError
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise error("factors", f"{value!r} must be a non-empty list of param names, e.g. lr,batch_size")
    names = tuple(v.strip() for v in value)
    if len(set(names)) != len(names):
        raise error("factors", f"{list(names)} names a param twice; each once")
    return names


def _reference(value: Any, factors: tuple[str, ...], error) -> dict[str, str]:  # noqa: ANN001
    """`{factor: level}` from a mapping or "a=lo,b=x"; only factors named in `factors`."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(p) != 2 for p in pairs):
            raise error("reference", f"{value!r} must be factor=level pairs, e.g. a=lo,b=x")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict):
        raise error("reference", f"{value!r} must map factors to their reference level")
    unknown = [k for k in value if k not in factors]
    if unknown:
        raise error("reference", f"{unknown[0]!r} is not one of the factors ({', '.join(factors)})")
    return {str(k): _label(v) for k, v in value.items()}


def _label(value: Any) -> str:
    """A level as MLflow's text params hold it (YAML's true is Python's True, which MLflow logs as "True")."""
    return str(value)


def _folder_name(experiment: str) -> str:
    """The experiment's name as a folder name (MLflow allows '/' and spaces in names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment).strip("_.") or "experiment"
