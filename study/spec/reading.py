"""Hand-written value checks kept only for tune_each_arm (merged from main; not yet ported to pydantic)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from study.config.factors import is_int, is_number
from study.core.errors import SpecError


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
    reject_unknown(source, "<top level>", raw, allowed)
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise SpecError(source, "name", f"{name!r} must be a non-empty string of letters, digits, '-' or '_'")
    return name


def reject_unknown(source: str, where: str, mapping: dict, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            raise SpecError(source, f"{where}.{key}" if where != "<top level>" else str(key),
                            f"unknown key; allowed keys: {', '.join(allowed)}")


def int_value(source: str, key: str, value: Any, low: int) -> int:
    if not is_int(value) or value < low:
        raise SpecError(source, key, f"{value!r} must be an integer >= {low}")
    return value


def text_value(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(source, key, "must be a string")
    return value


def finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def seed_list(source: str, key: str, raw: Any, minimum: int = 1, example: str = "[0, 1, 2]") -> tuple[int, ...]:
    """A non-empty list of distinct seeds >= 0 (at least `minimum` of them)."""
    if not isinstance(raw, list) or len(raw) < minimum:
        need = "a non-empty list" if minimum == 1 else f"a list of at least {minimum} seeds"
        raise SpecError(source, key, f"{raw!r} must be {need} of integers >= 0, e.g. {example}"
                        if minimum > 1 else f"must be {need} of integers >= 0, e.g. {example}")
    for i, seed in enumerate(raw):
        int_value(source, f"{key}[{i}]", seed, low=0)
    if len(set(raw)) != len(raw):
        raise SpecError(source, key, f"{raw} has duplicates; each seed once")
    return tuple(raw)
