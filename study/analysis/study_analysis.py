"""A study's statistics, computed once from its tidy trial frame (tables only, no I/O).

The report's sections render this; its plain-language findings read the same tables,
so a sentence can only quote a number that a table shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from study.analysis.leaderboard import METRICS as EFFECT_METRICS
from study.analysis.leaderboard import leaderboard
from study.analysis.levels import config_levels, unlisted_label
from study.analysis.stats.anova import Anova, anova, importance
from study.analysis.stats.divergence import impute_diverged
from study.analysis.stats.effects import main_effects
from study.analysis.stats.intervals import level_column
from study.analysis.stats.path import ablation_path
from study.config import TrialConfig
from study.spec.study_spec import StudySpec

PRIMARY = "final_val_accuracy"


@dataclass
class Analysis:
    spec: StudySpec
    frame: pd.DataFrame  # tidy, diverged trials without a finite accuracy at chance (column `imputed`)
    factor_levels: dict[str, list[str]]  # factors with levels present, reference first
    configs: pd.DataFrame
    effects: dict[str, pd.DataFrame]
    anova: Anova
    ranking: pd.DataFrame
    path: pd.DataFrame = field(default_factory=pd.DataFrame)
    path_note: str = ""
    path_source: dict[str, str] = field(default_factory=dict)
    path_source_note: str = ""
    path_source_name: str = "the lesson's first model"  # where the path starts (a study of your own: its base)

    @property
    def factors(self) -> list[str]:
        return list(self.factor_levels)

    @property
    def seeds(self) -> int:
        return int(self.frame["seed"].nunique()) if not self.frame.empty else 0


def analyse(spec: StudySpec, tidy: pd.DataFrame, source: TrialConfig,
            source_name: str = "the lesson's first model") -> Analysis:
    """All tables of the report from the tidy trial frame; `source` (`source_name`) starts the ablation path."""
    frame = impute_diverged(tidy)
    factor_levels = _factor_levels(spec, frame)
    factors = list(factor_levels)
    configs = leaderboard(tidy, factors)
    effects = {m: main_effects(frame, factor_levels, m) for m in EFFECT_METRICS}
    if spec.design == "full_factorial" and factors:
        decomposition = anova(frame, factors, PRIMARY)
    else:
        decomposition = Anova(pd.DataFrame(), f"the `{spec.design}` design varies one factor at a time around the "
                                            "base, so there is no factorial to decompose; the paired effects above "
                                            "are its main effects around the base" if factors else "no factors")
    result = Analysis(spec, frame, factor_levels, configs, effects, decomposition, importance(decomposition),
                      path_source_name=source_name)
    if factors:
        levels, unmatched = config_levels(source, spec)
        for factor in list(unmatched):  # e.g. the base of a one-at-a-time design: an unlisted value that was run
            own = unlisted_label(getattr(source, factor))
            if own in factor_levels.get(factor, []):
                levels[factor] = own
                unmatched.remove(factor)
        result.path_source = {f: levels[f] for f in factors}
        if unmatched:
            result.path_source_note = (f"{source_name} is none of the levels of " + ", ".join(
                f"`{f}`" for f in unmatched) + ", so the path starts at their reference level")
        result.path, result.path_note = ablation_path(frame, factors, result.path_source, PRIMARY)
    return result


def _factor_levels(spec: StudySpec, frame: pd.DataFrame) -> dict[str, list[str]]:
    """Spec order (reference first), plus any unlisted values found, for factors that vary."""
    out = {}
    for factor, levels in spec.factors.items():
        labels = [lv.label for lv in levels]
        column = frame[level_column(factor)] if level_column(factor) in frame else pd.Series([])
        labels += sorted(set(column.dropna()) - set(labels))
        if len(labels) > 1:
            out[factor] = labels
    return out
