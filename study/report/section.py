"""A report is a list of Sections. A section is one class: given the report's context, it writes its
tables and figures under `ctx.out` and returns its markdown ("" when it has nothing to say).

Adding a section to the study report is one class here or in study/report/sections/ and
one entry in study.report.study_report.SECTIONS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from study.analysis.study_analysis import Analysis
from study.config import lesson_setup
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.tracking.reading import InvocationRun


@dataclass
class ReportContext:
    """Everything a study report's sections read: the spec, the trials expected and finished, the analysis."""

    spec: StudySpec
    out: Path
    expected: list[Trial]
    all_runs: pd.DataFrame  # every trial run, unfinished ones included
    tidy: pd.DataFrame  # one row per finished trial with levels
    curves: pd.DataFrame  # per-epoch metrics (run_id, metric, epoch, value)
    parents: list[InvocationRun]  # the study's invocation runs, newest first
    result: Analysis | None = None  # None before any trial finished
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lesson(self) -> bool:
        """Whether the lesson's own sections belong here (its model on MNIST): the one predicate they all use."""
        return lesson_setup(t.config for t in self.expected)

    def table_path(self, name: str, ext: str = "csv") -> Path:
        return self.out / "tables" / f"{name}.{ext}"

    def figure_path(self, name: str) -> Path:
        return self.out / "figures" / f"{name}.png"


class Section(Protocol):
    """One part of a report."""

    def render(self, ctx: ReportContext) -> str: ...
