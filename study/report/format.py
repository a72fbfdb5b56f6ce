"""Number formats shared by report tables and the plain-language summary, so every
number a sentence quotes appears character for character in a table."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

METRIC_NAMES = {"final_val_accuracy": "val accuracy", "test_accuracy": "test accuracy",
                "final_val_loss": "val loss", "test_loss": "test loss", "failed": "failure rate"}


def is_accuracy(metric: str) -> bool:
    """Shown in percent (an accuracy, or a share of trials such as the failure rate)."""
    return metric.endswith("accuracy") or metric == "failed"


def value(x: float, metric: str) -> str:
    """An accuracy as a percentage (2 decimals), a loss with 4 decimals."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.2f}%" if is_accuracy(metric) else f"{x:.4f}"


def delta(x: float, metric: str) -> str:
    """A difference: accuracy in signed percentage points, loss signed with 4 decimals."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.2f} pp" if is_accuracy(metric) else f"{x:+.4f}"


def interval(low: float, high: float, metric: str, signed: bool = False) -> str:
    if low is None or not (math.isfinite(low) and math.isfinite(high)):
        return "[n/a]"
    if is_accuracy(metric):
        spec = "+.2f" if signed else ".2f"
        return f"[{100 * low:{spec}}, {100 * high:{spec}}]"
    spec = "+.4f" if signed else ".4f"
    return f"[{low:{spec}}, {high:{spec}}]"


def p_value(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def share(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def probability(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def markdown(table: pd.DataFrame, parse_numbers: bool = True) -> str:
    """A markdown table; pass parse_numbers=False for columns already formatted by this
    module, so tabulate prints "0.023" as written, not re-rounded to "0.0230"."""
    return table.to_markdown(index=False, floatfmt=".4f", disable_numparse=not parse_numbers)


def markdown_table(table: pd.DataFrame) -> str:
    """Floats with 4 decimals, integers as integers (tabulate would upcast them)."""
    formats = [".4f" if pd.api.types.is_float_dtype(dtype) else "g" for dtype in table.dtypes]
    return table.to_markdown(index=False, floatfmt=formats)


def effect(diff: float, low: float, high: float, metric: str) -> str:
    """`+10.88 pp [+2.03, +19.73]`: a difference with its interval, as tables and sentences print it."""
    return f"{delta(diff, metric)} {interval(low, high, metric, signed=True)}"


def points(x: float) -> str:
    """A non-negative size in percentage points (a standard deviation, a detectable difference)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f} pp"


_SYSTEM_DIRS = {"work", "tmp", "home", "root", "Users", "var", "mnt", "srv"}
_ABSOLUTE = re.compile(r"(?:(?<=sqlite:///)|(?<=file://)|(?<![\w.~/:-]))(/[^\s`'\"()\[\]<>|,;]+)")


def without_machine_paths(text: str, root: Path | None = None) -> str:
    """The text with every absolute file path made machine-independent: relative to `root` (default: the
    working directory) when it lies inside it, else shortened to `…/` and its last part or two. A committed
    report must not carry the paths of the machine that made it (they mean nothing elsewhere)."""
    root = (root or Path.cwd()).resolve()

    def shorten(match: re.Match[str]) -> str:
        path = Path(match.group(1))
        if len(path.parts) < 3:  # "/" or "/x": not a machine path worth hiding
            return match.group(1)
        try:
            return str(path.relative_to(root))
        except ValueError:
            tail = path.parts[-2:] if len(path.parts) > 3 and path.parts[-2] not in _SYSTEM_DIRS else path.parts[-1:]
            return "…/" + "/".join(tail)

    return _ABSOLUTE.sub(shorten, text)


@dataclass(frozen=True)
class Outcome:
    """How a report names and prints the outcome its effects and leaderboard are about: a study's val
    accuracy (a fraction, in % and pp), or the metric of an analysed experiment (raw, 4 decimals)."""

    label: str = "val accuracy"  # in sentences, axis labels and column headers
    short: str = "val acc"  # in the effects tables' headers
    percent: bool = True

    @property
    def kind(self) -> str:
        """The metric name this module's functions format by."""
        return "accuracy" if self.percent else "value"

    def value(self, x: float) -> str:
        return value(x, self.kind)

    def delta(self, x: float) -> str:
        return delta(x, self.kind)

    def interval(self, low: float, high: float, signed: bool = False) -> str:
        return interval(low, high, self.kind, signed)

    def effect(self, diff: float, low: float, high: float) -> str:
        return effect(diff, low, high, self.kind)

    def size(self, x: float) -> str:
        """A non-negative size (an SD, a detectable difference) in the outcome's units."""
        if self.percent:
            return points(x)
        return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


VAL_ACCURACY = Outcome()
