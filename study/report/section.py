"""A report is a list of Sections. A section is one class: given the report's context, it writes its
tables and figures under `ctx.out` and returns its markdown ("" when it has nothing to say).

Adding a section to the study report is one class here or in study/report/sections/ and
one keyed entry in study.report.study_report.SECTIONS (a companion's sections take their keys' places:
study.analysis.companion); to a tuning report, one entry in
study.report.tune_report.SECTIONS (its sections read a TuneContext).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd

from study.analysis.study_analysis import Analysis
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec
from study.spec.tune_spec import TuneSpec
from study.tracking.reading import InvocationRun
from study.tuning.search import Search


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

    def table_path(self, name: str, ext: str = "csv") -> Path:
        return self.out / "tables" / f"{name}.{ext}"

    def figure_path(self, name: str) -> Path:
        return self.out / "figures" / f"{name}.png"


@dataclass
class TuneContext:
    """Everything a tuning report's sections read: the spec, Optuna's trials (study.tuning.search) and their
    per-epoch values; the retrained arms are read from MLflow by the section that shows them."""

    spec: TuneSpec
    out: Path
    storage_url: str  # the Optuna storage, as the report names it (password redacted by the section)
    search: Search | None  # None before the Optuna study exists
    trials: pd.DataFrame  # one row per Optuna trial (Search.trials_table)
    curves: pd.DataFrame  # the values each trial reported per epoch (Search.intermediate_values)

    @property
    def has_results(self) -> bool:
        """At least one trial completed: the sections about results have something to show."""
        return not self.trials.empty and bool((self.trials["state"] == "COMPLETE").any())

    def table_path(self, name: str) -> Path:
        return self.out / "tables" / f"{name}.csv"


class ResultsSection:
    """A tuning report's section about results: empty until a trial completed (one guard, not one per section)."""

    def render(self, ctx: TuneContext) -> str:
        return self.body(ctx) if ctx.has_results else ""

    def body(self, ctx: TuneContext) -> str:
        raise NotImplementedError


Context = TypeVar("Context", contravariant=True)


class Section(Protocol[Context]):
    """One part of a report (of a study: a ReportContext; of a tuning study: a TuneContext)."""

    def render(self, ctx: Context) -> str: ...
