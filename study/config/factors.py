"""A factor declaration: everything the framework needs to know about one TrialConfig field.

Each field of TrialConfig is declared once, with `declare(default, ...)`: its kind,
allowed values or range, whether it changes the compiled model, and whether it is
hashed into the trial key even at its default. The spec parsers (study and tuning),
MLflow param parsing, the compiled-model cache and the error messages all read these
declarations, so a new factor is one line here plus its use where it acts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("choice", "bool", "int", "float", "text", "mapping")  # mapping: the user's hyperparameters (one field)


@dataclass(frozen=True)
class Factor:
    """How one config field may vary.

    `structural`: trials that differ only in non-structural fields share one compiled
    program (weights, learning rate and data are inputs of it; a dropout rate or an
    optimizer's weight decay are constants inside it). `keyed_at_default`: the fields
    of the first key version are always hashed; every field added later is hashed only
    when it differs from its default, so adding a field never re-keys stored trials.
    """

    kind: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    structural: bool = False
    keyed_at_default: bool = False
    check: Callable[[Any], str | None] | None = None  # an extra rule (e.g. a dataset name the registry knows)
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"factor kind {self.kind!r} is not one of {KINDS}")

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def range_text(self, name: str) -> str:
        """`0 <= dropout < 1`, `learning_rate > 0 (finite)`: the allowed range as the user reads it."""
        parts = []
        if self.low is not None:
            parts.append(f"{_num(self.low)} {'<' if self.low_open else '<='} ")
        parts.append(name)
        if self.high is not None:
            parts.append(f" {'<' if self.high_open else '<='} {_num(self.high)}")
        text = "".join(parts)
        if self.low is not None and self.high is None and self.kind == "float":
            text = f"{name} {'>' if self.low_open else '>='} {_num(self.low)} (finite)"
        return text

    def problem(self, name: str, value: Any) -> str | None:
        """Why `value` is not valid for this field, or None if it is."""
        if value is None:
            return None if self.optional else f"{value!r} is not allowed; a value is required"
        if self.kind == "choice":
            if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in self.choices):
                return f"{value!r} is not allowed; allowed values: {', '.join(map(str, self.choices))}"
        elif self.kind == "bool":
            if not isinstance(value, bool):
                return f"{value!r} must be a boolean (true or false)"
        elif self.kind == "int":
            low = int(self.low) if self.low is not None else None
            if not is_int(value) or (low is not None and value < low) or (self.high is not None and value > self.high):
                return f"{value!r} must be {'null or ' if self.optional else ''}an integer{self._int_bounds()}"
        elif self.kind == "float":
            if not is_number(value):
                return f"{value!r} must be a number"
            if not self._in_range(float(value)):
                return f"{value!r} is out of range; allowed: {self.range_text(name)}"
        elif self.kind == "text":
            if not isinstance(value, str) or not value:
                return f"{value!r} must be a non-empty string"
        elif self.kind == "mapping":
            if not isinstance(value, tuple) or not all(
                    isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and is_scalar(p[1]) for p in value):
                return f"{value!r} must be (name, value) pairs of numbers, booleans or strings"
        return self.check(value) if self.check is not None else None

    def _int_bounds(self) -> str:
        if self.high is None:
            return f" >= {int(self.low)}" if self.low is not None else ""
        return f" in [{int(self.low)}, {int(self.high)}]" if self.low is not None else f" <= {int(self.high)}"

    def coerce(self, value: Any) -> Any:
        """The value in the field's Python type (an integer given for a float field becomes a float)."""
        if self.kind == "float" and is_int(value):
            return float(value)
        return value

    def parse(self, text: str) -> Any:
        """Type one MLflow string param back (MLflow stores params as text)."""
        if text in ("None", "") and (self.optional or self.kind != "text"):
            return None
        if self.kind == "bool":
            return text == "True"
        if self.kind == "int":
            return int(float(text))
        if self.kind == "float":
            return float(text)
        if self.kind == "choice":  # a user's choices may be numbers: the choice whose text this is
            return next((c for c in self.choices if str(c) == text), text)
        return text

    def _in_range(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


def declare(default: Any, kind: str, **options: Any) -> Any:
    """A TrialConfig field with its factor declaration (a `dataclasses.field`)."""
    return dataclasses.field(default=default, metadata={"factor": Factor(kind=kind, **options)})


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    """What a hyperparameter can hold: a number, a boolean or a string (JSON- and MLflow-friendly)."""
    return isinstance(value, (int, float, str, bool))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
