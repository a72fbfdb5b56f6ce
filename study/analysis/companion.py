"""What the core asks of a companion (study.core.companions): the one seam for content such as the lesson's.

The core never names a companion's content. Where a study of your own and a study with a companion differ,
the core asks the spec's companion:
- **where the ablation path starts** (`path_start`, `path_start_name`): the lesson's first model, or the spec's
  base config without a companion; the confirm stage and the report take the same start;
- **which claims to test** (`claims`, `more_claims`): a table in study.analysis.claim_table's format; the
  adaptive design also decides the claims' accuracy contrasts;
- **which report sections** (`sections`): each replaces the core section of the same key in the study report
  (study.report.study_report.SECTIONS) or fills an empty slot there; with the paragraphs its claims add to the
  methods (`methods`) and what its tables hold (`tables`);
- **whether a spec fits it** (`spec_problem`): a spec that switches on a companion whose setup it does not
  train is refused with one line, exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pandas as pd

from study.config import TrialConfig
from study.core.companions import companion


class Companion(Protocol):
    name: str
    path_start_name: str  # "the lesson's first model"
    sections: Mapping[str, Any]  # report key -> study.report.section.Section
    methods: str  # paragraphs for the report's methods section (how its claims are read)
    tables: Mapping[str, str]  # the tables its sections write -> what each holds (the report's file list)

    def path_start(self) -> TrialConfig:
        """The config the ablation path starts from."""

    def claims(self, frame: pd.DataFrame, factor_levels: dict[str, list[str]],
               start_levels: dict[str, str] | None = None, tuned: str = "") -> pd.DataFrame:
        """The claims table of a study's main trials (failures marked): study.analysis.claim_table.COLUMNS."""

    def more_claims(self, spec: Any, fair: Any, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
        """Claims read off more than the main trials (the tuned arms: study.analysis.fair.FairAnalysis)."""

    def spec_problem(self, configs: list[TrialConfig]) -> str | None:
        """Why a spec's trials do not fit this companion (None when they do)."""


def companion_of(spec: Any) -> Companion | None:
    """The companion a study spec switches on (`lesson: true`), or None for a study of your own."""
    return companion("lesson") if getattr(spec, "lesson", False) else None
