"""A study's statistics, computed once from its tidy trial frame (tables only, no I/O).

The report's sections render this; its plain-language findings read the same tables,
so a sentence can only quote a number that a table shows.

Every factorial analysis (effects, failures, decomposition, claims) uses the main trials only (the
spec's `seeds`: a balanced design). The confirm trials (the spec's `confirm.seeds`) re-measure the
leaderboard's top and the ablation path on seeds that played no part in choosing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from study.analysis.claims import lesson_claims
from study.analysis.confirm import path_source
from study.analysis.leaderboard import METRICS as EFFECT_METRICS
from study.analysis.leaderboard import ranked_leaderboard
from study.analysis.stats.blocks import block_effects
from study.analysis.stats.divergence import impute_diverged
from study.analysis.stats.factorial import Decomposition, decompose, grouped_terms, total_effects
from study.analysis.stats.failures import (FailureRule, failing_configs, failure_effects, failures_by_level,
                                           learner_effects, mark_failures)
from study.analysis.stats.intervals import level_column
from study.analysis.stats.noop import learning_rate_changes, noop_table
from study.analysis.stats.path import ablation_path, path_configs, path_rows
from study.analysis.stats.power import seed_sd, two_config_detectable
from study.config import TrialConfig
from study.spec.study_spec import StudySpec

PRIMARY = "final_val_accuracy"


@dataclass
class Analysis:
    spec: StudySpec
    frame: pd.DataFrame  # main trials, tidy; diverged without a finite accuracy at chance (`imputed`); failed/learned
    factor_levels: dict[str, list[str]]  # factors with levels present, reference first
    configs: pd.DataFrame  # the ranked leaderboard (confirmed top first when there is a confirm stage)
    effects: dict[str, pd.DataFrame]  # metric -> block effects, every trial (pooled)
    rule: FailureRule
    learners: dict[str, pd.DataFrame] = field(default_factory=dict)  # metric -> block effects among learners
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)  # block effects on the failure rate
    failure_levels: pd.DataFrame = field(default_factory=pd.DataFrame)
    failing: pd.DataFrame = field(default_factory=pd.DataFrame)  # configs with a trial that did not learn
    noops: pd.DataFrame = field(default_factory=pd.DataFrame)
    decomposition: Decomposition = field(default_factory=lambda: Decomposition(pd.DataFrame()))
    terms: pd.DataFrame = field(default_factory=pd.DataFrame)  # grouped decomposition terms
    ranking: pd.DataFrame = field(default_factory=pd.DataFrame)  # total-effect ranking
    claims: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: dict = field(default_factory=dict)
    confirm_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: pd.DataFrame = field(default_factory=pd.DataFrame)
    path_note: str = ""
    path_source: dict[str, str] = field(default_factory=dict)
    path_source_note: str = ""
    path_source_name: str = "the lesson's first model"  # where the path starts (a study of your own: its base)
    path_seeds: str = "main"  # `confirm` when the path's numbers come from the confirm seeds

    @property
    def factors(self) -> list[str]:
        return list(self.factor_levels)

    @property
    def seeds(self) -> int:
        return int(self.frame["seed"].nunique()) if not self.frame.empty else 0


def analyse(spec: StudySpec, tidy: pd.DataFrame, source: TrialConfig, rule: FailureRule,
            curves: pd.DataFrame | None = None, source_name: str = "the lesson's first model",
            claims: bool = True) -> Analysis:
    """All tables of the report from the tidy trial frame; `source` (`source_name`) starts the ablation path;
    `rule` says which trials did not learn; `curves` (per-epoch metrics) feed the no-op detection; `claims=False`
    skips the lesson's claims (they read the lesson's config columns, which runs of other code do not have)."""
    everything = mark_failures(impute_diverged(tidy), rule)
    if curves is not None and not curves.empty:
        everything = everything.merge(learning_rate_changes(curves), left_on="run_id", right_index=True, how="left")
    main = everything[everything["seed"].isin(spec.seeds)].reset_index(drop=True)
    fresh = everything[~everything["seed"].isin(spec.seeds)].reset_index(drop=True)
    factor_levels = _factor_levels(spec, main)
    factors = list(factor_levels)
    result = Analysis(spec, main, factor_levels, ranked_leaderboard(everything, spec.seeds, spec.confirm, factors),
                      {m: block_effects(main, factor_levels, m) for m in EFFECT_METRICS}, rule, confirm_frame=fresh,
                      path_source_name=source_name)
    result.learners = {m: learner_effects(main, factor_levels, m) for m in (PRIMARY, "test_accuracy")}
    result.failures = failure_effects(main, factor_levels)
    result.failure_levels = failures_by_level(main, factor_levels)
    result.failing = failing_configs(main, factors)
    result.noops = noop_table(main, result.effects[PRIMARY])
    noise = seed_sd(main, factors, PRIMARY)
    result.power = {**noise, "seeds": result.seeds, "two_configs": two_config_detectable(noise["top_sd"], result.seeds)}
    if spec.confirm is not None:
        result.power["confirm_seeds"] = len(spec.confirm.seeds)
        result.power["two_configs_confirm"] = two_config_detectable(noise["top_sd"], len(spec.confirm.seeds))
    if factors:
        if claims:
            result.claims = lesson_claims(main, factor_levels)
        if spec.design == "full_factorial":
            result.decomposition = decompose(main, factors, PRIMARY)
        else:
            result.decomposition = Decomposition(pd.DataFrame(), note=f"the `{spec.design}` design does not run "
                                                                      "every combination, so there is no factorial "
                                                                      "to decompose; the block effects above are its "
                                                                      "main effects")
        result.terms = grouped_terms(result.decomposition)
        result.ranking = total_effects(result.decomposition)
        _path(result, source)
    else:
        result.decomposition = Decomposition(pd.DataFrame(), note="this study has no factor with two or more "
                                                                  "levels, so there is nothing to decompose")
    return result


def _path(result: Analysis, source: TrialConfig) -> None:
    """The path's order is decided on the main seeds; its numbers come from the confirm seeds when
    every config on it was confirmed."""
    spec, factors = result.spec, result.factors
    result.path_source, unmatched = path_source(spec, result.factor_levels, source)
    if unmatched:
        result.path_source_note = (f"{result.path_source_name} is none of the levels of " + ", ".join(
            f"`{f}`" for f in unmatched) + ", so the path starts at their reference level")
    result.path, result.path_note = ablation_path(result.frame, factors, result.path_source, PRIMARY)
    if result.confirm_frame.empty or result.path.empty:
        return
    configs, _ = path_configs(result.frame, factors, result.path_source, PRIMARY)
    confirmed = path_rows(result.confirm_frame, factors, configs, PRIMARY)
    if (confirmed["n"] > 0).all():
        result.path, result.path_seeds = confirmed, "confirm"


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
