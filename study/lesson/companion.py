"""The lesson as a companion (study.analysis.companion): what `lesson: true` adds to a study.

Its claims (study.lesson.claims, and the tuned-rate claim of study.lesson.rate_claim), the ablation path from its
first model (study.lesson.reference), and its report sections: the claims table, its figures (initial weights,
its exercise schedule beside the study's schedules), its first model's epochs beside ours, and the gradients
read in its condition. Imports stay inside the methods, so a spec that names the lesson does not load the
report's plotting code in every worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

import pandas as pd

from study.config import LESSON_MODEL, TrialConfig

METHODS = """- **The lesson's claims.** Each claim in the lesson's condition (the first model's levels; one block) and over
  the whole grid (blocks); verdicts from the interval with a 0.5 pp margin (5 pp of failure rate) for "no
  effect", and `depends on <factor>` when the whole grid's sub-effects within that factor's levels lie on both
  sides of zero.
"""
LESSON_DATASET = "mnist"
LESSON_EXECUTORS = ("keras", "fused")  # your own code (train:, command:) trains no lesson model, whatever its data
TABLES = {
    "claims": "the lesson's claims, each in the lesson's condition and over the whole grid: contrast, condition, "
              "difference, interval, verdict, where it holds and reverses, why",
    "init_weights": "sampled vs theoretical std of each initializer",
    "lesson_comparison": "the lesson's per-epoch training loss and accuracy beside ours",
}


def lesson_setup(configs: Iterable[Any]) -> bool:
    """Whether every config trains the lesson's model on the lesson's data: what a spec's `lesson: true` needs
    (the spec says whether it is the lesson's study; this only checks that it can be)."""
    configs = list(configs)
    return bool(configs) and all(c.model == LESSON_MODEL and c.dataset == LESSON_DATASET
                                 and getattr(c, "executor", "keras") in LESSON_EXECUTORS for c in configs)


class LessonCompanion:
    name = "lesson"
    path_start_name = "the lesson's first model"
    methods = METHODS
    tables: Mapping[str, str] = TABLES

    def path_start(self) -> TrialConfig:
        from study.lesson.reference import LESSON_FIRST_MODEL

        return TrialConfig(**LESSON_FIRST_MODEL)

    def claims(self, frame: pd.DataFrame, factor_levels: dict[str, list[str]],
               start_levels: dict[str, str] | None = None, tuned: str = "") -> pd.DataFrame:
        from study.lesson.claims import lesson_claims

        return lesson_claims(frame, factor_levels, start_levels, tuned=tuned)

    def more_claims(self, spec: Any, fair: Any, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
        from study.lesson.rate_claim import rate_claim

        return rate_claim(spec, fair, factor_levels)

    def spec_problem(self, configs: list[TrialConfig]) -> str | None:
        if lesson_setup(configs):
            return None
        return ("true needs the lesson's MLP on MNIST in every config (model: lesson_mlp, dataset: mnist): its "
                "claims and figures are about that model")

    @cached_property
    def sections(self) -> Mapping[str, Any]:
        from study.lesson.claims_section import ClaimsSection
        from study.lesson.reference import LESSON_CONDITION
        from study.lesson.sections import LessonComparisonSection, LessonFiguresSection
        from study.report.sections.gradients import GradientsSection

        return {"claims": ClaimsSection(), "schedules": LessonFiguresSection(),
                "gradients": GradientsSection(LESSON_CONDITION, "the vanishing gradient the lesson blames on sigmoid"),
                "comparison": LessonComparisonSection()}


LESSON = LessonCompanion()
