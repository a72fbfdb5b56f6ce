"""A study's statistics, computed once from its tidy trial frame (tables only, no I/O).

The report's sections render this; its plain-language findings read the same tables,
so a sentence can only quote a number that a table shows.

Every factorial analysis (effects, failures, decomposition, claims) uses the main trials only (the
spec's `seeds`: a balanced design). The confirm trials (the spec's `confirm.seeds`) re-measure the
leaderboard's top and the ablation path on seeds that played no part in choosing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from study.analysis.confirm import path_source
from study.analysis.gradients import with_gradients
from study.analysis.leaderboard import METRICS as EFFECT_METRICS
from study.analysis.leaderboard import ranked_leaderboard
from study.analysis.leaderboard import CONFIRMED
from study.analysis.stats.blocks import block_effects
from study.analysis.stats.conditional import (conditional_effects, sign_changes, strongest_higher_order,
                                              term_cells, term_contrasts)
from study.analysis.stats.divergence import impute_diverged
from study.analysis.stats.factorial import Decomposition, decompose, grouped_terms, total_effects
from study.analysis.stats.failures import (FailureRule, best_config_mean, failing_configs, failure_effects,
                                           failures_by_level, learner_effects, learner_sensitivity, mark_failures)
from study.analysis.stats.region import Region, default_region, region_frame, spec_region
from study.analysis.stats.top_group import TopGroup, top_group
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
    path_source_name: str = "the base config"  # where the path starts (a companion's own start: the lesson's first model)
    path_seeds: str = "main"  # `confirm` when the path's numbers come from the confirm seeds
    conditional: pd.DataFrame = field(default_factory=pd.DataFrame)  # every contrast within each moderator level
    sign_changes: pd.DataFrame = field(default_factory=pd.DataFrame)  # (contrast, moderator) pairs that reverse
    higher_term: pd.Series | None = None  # the strongest term of order >= 3
    higher_contrasts: pd.DataFrame = field(default_factory=pd.DataFrame)  # its members' effects in its cells
    higher_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    region: Region | None = None
    region_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    region_decomposition: Decomposition = field(default_factory=lambda: Decomposition(pd.DataFrame()))
    region_ranking: pd.DataFrame = field(default_factory=pd.DataFrame)
    top: TopGroup | None = None
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)  # effects among learners per learner threshold

    @property
    def factors(self) -> list[str]:
        return list(self.factor_levels)

    @property
    def seeds(self) -> int:
        return int(self.frame["seed"].nunique()) if not self.frame.empty else 0


def analyse(spec: StudySpec, tidy: pd.DataFrame, source: TrialConfig, rule: FailureRule,
            curves: pd.DataFrame | None = None, source_name: str = "the base config",
            claims: Callable[..., pd.DataFrame] | None = None) -> Analysis:
    """All tables of the report from the tidy trial frame; `source` (`source_name`) starts the ablation path;
    `rule` says which trials did not learn; `curves` (per-epoch metrics) feed the no-op detection; `claims`: the
    spec's companion's claims (study.analysis.companion.Companion.claims), None for a study without claims."""
    imputed = impute_diverged(tidy)
    factor_levels = _factor_levels(spec, imputed[imputed["seed"].isin(spec.seeds)])
    factors = list(factor_levels)
    rule = rule.with_best(best_config_mean(mark_failures(imputed[imputed["seed"].isin(spec.seeds)], rule), factors))
    everything = mark_failures(imputed, rule)
    if curves is not None and not curves.empty:
        everything = everything.merge(learning_rate_changes(curves), left_on="run_id", right_index=True, how="left")
        everything = with_gradients(everything, curves)
    main = everything[everything["seed"].isin(spec.seeds)].reset_index(drop=True)
    fresh = everything[~everything["seed"].isin(spec.seeds)].reset_index(drop=True)
    board = ranked_leaderboard(everything, spec.seeds, spec.confirm, factors, validation_size=rule.validation_size)
    result = Analysis(spec, main, factor_levels, board,
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
        if claims is not None:
            result.claims = claims(main, factor_levels, path_source(spec, factor_levels, source)[0],
                                   tuned=tuned_note(spec))
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
        _conditional(result)
        _region(result)
        result.sensitivity = learner_sensitivity(main, factor_levels, rule)
    else:
        result.decomposition = Decomposition(pd.DataFrame(), note="this study has no factor with two or more "
                                                                  "levels, so there is nothing to decompose")
    _top_group(result)
    return result


def tuned_note(spec: StudySpec) -> str:
    """How the main trials' nuisance values were chosen when each arm was tuned ("" at the spec's fixed values)."""
    tune = spec.tune_each_arm
    if tune is None or spec.tuned is None:
        return ""
    return (f"{', '.join(tune.fields)} tuned per arm by {tune.sampler} over {tune.trials} points on seeds "
            f"{list(tune.seeds)}, none of the study's")


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


def _conditional(result: Analysis) -> None:
    """Each contrast within each level of every other factor, and the strongest higher-order term's cells."""
    result.conditional = conditional_effects(result.frame, result.factor_levels, PRIMARY)
    result.sign_changes = sign_changes(result.conditional)
    result.higher_term = strongest_higher_order(result.decomposition.terms)
    if result.higher_term is not None:
        members = tuple(result.higher_term["factors"])
        result.higher_contrasts = term_contrasts(result.frame, result.factor_levels, members, PRIMARY)
        result.higher_cells = term_cells(result.frame, members, PRIMARY, result.factor_levels)


def _region(result: Analysis) -> None:
    """The region near the top (the spec's `region:` or found from the data), its effects and importance."""
    filters = result.spec.region
    margin = filters.get("margin_pp")
    named = {f: [str(v) for v in lv] for f, lv in filters.items() if f != "margin_pp" and f in result.factor_levels}
    if named:
        region = spec_region(named, result.frame, result.factor_levels, PRIMARY)
    else:
        region = default_region(result.frame, result.factor_levels, PRIMARY,
                                **({"margin": margin / 100} if margin is not None else {}))
    result.region = region
    if region is None:
        return
    inside = region_frame(result.frame, region)
    varying = region.varying
    if not varying or inside.empty:
        return
    result.region_effects = block_effects(inside, varying, PRIMARY)
    if result.spec.design == "full_factorial":
        result.region_decomposition = decompose(inside, list(varying), PRIMARY)
        result.region_ranking = total_effects(result.region_decomposition)


def _top_group(result: Analysis) -> None:
    """Among the confirmed configs on their confirm seeds when the confirm stage ran, else among every config."""
    factors = result.factors
    confirmed = result.configs[result.configs["stage"] == CONFIRMED] if "stage" in result.configs else pd.DataFrame()
    if not confirmed.empty and not result.confirm_frame.empty:
        candidates = [tuple(str(row[f]) for f in factors) for _, row in confirmed.iterrows()]
        result.top = top_group(result.confirm_frame, factors, PRIMARY, candidates, seeds="confirm",
                               order=result.factor_levels)
    elif not result.frame.empty:
        result.top = top_group(result.frame, factors, PRIMARY, seeds="main", order=result.factor_levels)


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
