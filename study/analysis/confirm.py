"""Which configs the `confirm` stage re-runs, decided from the main trials alone.

The same function runs in every worker (to enqueue the confirm trials once the main trials are
done) and in the report (to know which trials to expect), so both always agree: the top-k
configs of the main seeds' leaderboard and, with `path: true`, every config on the ablation path
from the lesson's first model to the main seeds' best config. Ties are broken by the spec's
config order, so the selection is a pure function of the main results.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.companion import companion_of
from study.analysis.leaderboard import ranked_leaderboard
from study.analysis.levels import config_levels, tidy_trials, unlisted_label
from study.analysis.stats.path import path_configs
from study.config import TrialConfig
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec

PRIMARY = "final_val_accuracy"


def path_start(spec: StudySpec) -> TrialConfig:
    """Where the ablation path starts: the spec's companion's start (the lesson's first model), else its base."""
    companion = companion_of(spec)
    return companion.path_start() if companion is not None else spec.base


def path_source(spec: StudySpec, factor_levels: dict[str, list[str]],
                source: TrialConfig) -> tuple[dict[str, str], list[str]]:
    """The levels the ablation path starts from (`source`: study.analysis.confirm.path_start) and the factors
    where that config has none of the spec's levels (their reference level is taken instead)."""
    levels, unmatched = config_levels(source, spec)
    for factor in list(unmatched):  # e.g. the base of a one-at-a-time design: an unlisted value that was run
        own = unlisted_label(getattr(source, factor))
        if own in factor_levels.get(factor, []):
            levels[factor] = own
            unmatched.remove(factor)
    return {f: levels[f] for f in factor_levels}, unmatched


def selected_levels(spec: StudySpec, main: pd.DataFrame, factor_levels: dict[str, list[str]]) -> list[tuple]:
    """The level tuples (in `factor_levels` order) of the configs to confirm: top-k, then the path's."""
    if spec.confirm is None or main.empty:
        return []
    factors = list(factor_levels)
    board = ranked_leaderboard(main, spec.seeds, None, factors)
    chosen = [tuple(str(row[f]) for f in factors) for _, row in board.head(spec.confirm.top_k).iterrows()]
    if spec.confirm.path and factors:
        source, _ = path_source(spec, factor_levels, path_start(spec))
        configs, _ = path_configs(main, factors, source, PRIMARY)
        chosen += [c for c in configs if c not in chosen]
    return chosen


def confirm_trials(spec: StudySpec, tidy: pd.DataFrame) -> list[Trial] | None:
    """The confirm stage's trials ([] without a confirm stage), or None while some main trial has no
    finished result in `tidy` (the selection cannot be made yet).

    `tidy` is the study's tidy trial frame (levels assigned from the spec); trials of other seeds in
    it are ignored.
    """
    if spec.confirm is None:
        return []
    if tidy.empty:
        return None
    expected = spec.unique_trials()
    main = tidy[tidy["seed"].isin(spec.seeds) & tidy["trial_key"].isin({t.key for t in expected})]
    if main["trial_key"].nunique() < len(expected):
        return None
    factor_levels = {f: [lv.label for lv in levels] for f, levels in spec.factors.items() if len(levels) > 1}
    by_levels: dict[tuple, Trial] = {}
    for trial in expected:
        if trial.config.seed != spec.seeds[0]:
            continue
        levels, _ = config_levels(trial.config, spec)
        by_levels.setdefault(tuple(levels[f] for f in factor_levels), trial)
    out = []
    for chosen in selected_levels(spec, main, factor_levels):
        trial = by_levels.get(chosen)
        if trial is None:
            continue
        for seed in spec.confirm.seeds:
            out.append(Trial(config=trial.config.replace(seed=seed), levels=dict(trial.levels)))
    return out


def confirm_trials_from_runs(spec: StudySpec, runs: pd.DataFrame) -> list[Trial] | None:
    """`confirm_trials` from a raw MLflow trials frame (study.analysis.runs.trials_frame)."""
    return confirm_trials(spec, tidy_trials(runs, spec) if not runs.empty else runs)


def stage_of(frame: pd.DataFrame, spec: StudySpec) -> pd.Series:
    """`main` or `confirm` per trial, by its seed."""
    return frame["seed"].isin(spec.seeds).map({True: "main", False: "confirm"})
