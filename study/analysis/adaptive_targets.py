"""What an adaptive study decides, built from its spec and its results: the targets of study.analysis.sequential.

- every main effect: each non-reference level against its factor's reference, over every block;
- with a companion that brings claims (study.analysis.companion: the lesson's), every claim's contrast on an
  accuracy (each reading of it, as the claims table states them; the claims on the failure rate and among
  learners are not linear in the results and stay with the ordinary analysis);
- membership of the top group, per config.
The results become configs x seeds matrices in the spec's seed order (`grid_of`), so the same decision code runs
on a study's MLflow runs and on simulated studies (tests/analysis/test_sequential_simulation.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.analysis.claim_table import MEASURES, NOT_TESTABLE
from study.analysis.companion import companion_of
from study.analysis.sequential import PRIMARY, Contrast, Grid, Replay, SequentialDesign, replay
from study.analysis.stats.divergence import impute_diverged
from study.analysis.stats.failures import FailureRule, LEARNED, best_config_mean, mark_failures
from study.analysis.stats.intervals import level_column

ACCURACIES = (PRIMARY, "test_accuracy")


def factor_levels_of(spec) -> dict[str, list[str]]:
    """The spec's factors with two or more levels, reference first (labels as the analysis writes them)."""
    return {f: [lv.label for lv in levels] for f, levels in spec.factors.items() if len(levels) > 1}


def config_labels(factor_levels: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """Every combination of the levels (full factorial order: the first factor outermost)."""
    return [tuple(combo) for combo in itertools.product(*factor_levels.values())] if factor_levels else [()]


def within_contrast(labels: list[tuple[str, ...]], factors: list[str], factor: str, level: str, reference: str,
                    where: dict[str, list[str]] | None = None, name: str = "", kind: str = "main effect",
                    metric: str = PRIMARY) -> Contrast | None:
    """level - reference, averaged over the blocks (combinations of the other factors' levels allowed by
    `where`) in which both were run; None when no block has both."""
    where = where or {}
    at = factors.index(factor)
    index = {label: i for i, label in enumerate(labels)}
    blocks: list[tuple[int, int]] = []
    for i, label in enumerate(labels):
        if label[at] != reference or any(label[factors.index(f)] not in allowed for f, allowed in where.items()):
            continue
        partner = index.get(label[:at] + (level,) + label[at + 1:])
        if partner is not None:
            blocks.append((partner, i))
    if not blocks:
        return None
    weight = 1.0 / len(blocks)
    weights = tuple((c, w) for pair in blocks for c, w in ((pair[0], weight), (pair[1], -weight)))
    return Contrast(name or f"{factor}: {level} vs {reference}", kind, weights, metric)


def main_effects(labels: list[tuple[str, ...]], factor_levels: dict[str, list[str]]) -> list[Contrast]:
    factors = list(factor_levels)
    out = []
    for factor, levels in factor_levels.items():
        for level in levels[1:]:
            contrast = within_contrast(labels, factors, factor, level, levels[0])
            if contrast is not None:
                out.append(contrast)
    return out


def claim_contrasts(table: pd.DataFrame, labels: list[tuple[str, ...]],
                    factor_levels: dict[str, list[str]]) -> list[Contrast]:
    """The claims' accuracy contrasts (every reading), read off a claims table (study.analysis.claim_table) of
    the start seeds' trials: the table names each reading's contrast and condition."""
    metric_of = {text: metric for metric, text in MEASURES.items() if metric in ACCURACIES}
    factors, out, seen = list(factor_levels), [], set()
    for _, row in table.iterrows():
        metric = metric_of.get(row["measure"])
        if metric is None or row["verdict"] == NOT_TESTABLE or ": " not in str(row["contrast"]):
            continue
        factor, _, pair = str(row["contrast"]).partition(": ")
        level, _, reference = pair.partition(" vs ")
        where = _condition(str(row["condition"]), factor_levels)
        if factor not in factor_levels or where is None:
            continue
        name = f"claim: {row['claim']} ({row['scope']}; {row['contrast']}{', ' + row['condition'] if row['condition'] else ''})"
        contrast = within_contrast(labels, factors, factor, level, reference, where, name, "claim", metric)
        if contrast is not None and contrast.weights not in seen:
            seen.add(contrast.weights)
            out.append(contrast)
    return out


def _condition(text: str, factor_levels: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """`name=a/b, other=c` (a claims table's condition) -> {name: [a, b], ...}, factors of the study only (the
    others are fixed by the study); None when a level is not one of the study's."""
    where: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(", "))):
        name, _, levels = part.partition("=")
        if name not in factor_levels:
            continue
        allowed = levels.split("/")
        if not set(allowed) <= set(factor_levels[name]):
            return None
        where[name] = allowed
    return where


def grid_of(tidy: pd.DataFrame, spec, rule: FailureRule, max_seeds: int) -> Grid:
    """The study's results as matrices: diverged trials at chance (as in every effect), a seed that does not
    learn marked (the rule's learner threshold from the best config's mean), seeds in the spec's order."""
    factor_levels = factor_levels_of(spec)
    labels = config_labels(factor_levels)
    seeds = list(spec.seeds[:max_seeds])
    values = {m: np.full((len(labels), len(seeds)), np.nan) for m in ACCURACIES}
    learned = np.ones((len(labels), len(seeds)), dtype=bool)
    if tidy.empty:
        return Grid(labels, values, learned)
    data = impute_diverged(tidy[tidy["seed"].isin(seeds)])
    factors = list(factor_levels)
    data = mark_failures(data, rule.with_best(best_config_mean(data, factors)))
    index = {label: i for i, label in enumerate(labels)}
    columns = [level_column(f) for f in factors]
    for _, row in data.iterrows():
        config = index.get(tuple(str(row[c]) for c in columns))
        if config is None:
            continue
        s = seeds.index(int(row["seed"]))
        for metric in ACCURACIES:
            value = row.get(metric)
            values[metric][config, s] = float(value) if value is not None and math.isfinite(float(value)) else np.nan
        learned[config, s] = bool(row[LEARNED])
    return Grid(labels, values, learned)


def design_of(spec) -> SequentialDesign:
    adaptive = spec.adaptive
    return SequentialDesign(adaptive.start_seeds, adaptive.max_seeds, adaptive.margin_pp / 100, adaptive.alpha,
                            adaptive.spending)


@dataclass
class AdaptiveAnalysis:
    """An adaptive study's rounds and decisions, replayed from its results (and the fixed design's, when every
    config has max_seeds results: the benchmark that runs both)."""

    design: SequentialDesign
    grid: Grid
    contrasts: list[Contrast]
    replay: Replay
    fixed: Replay | None = None


def adaptive_analysis(spec, tidy: pd.DataFrame, rule: FailureRule,
                      contrasts: list[Contrast] | None = None) -> AdaptiveAnalysis:
    """The rounds and decisions of an adaptive spec from its tidy trials (study.analysis.levels.tidy_trials);
    `contrasts`: the targets when already built (a worker builds them once, from the start seeds' results)."""
    design = design_of(spec)
    grid = grid_of(tidy, spec, rule, design.max_seeds)
    if contrasts is None:
        contrasts = targets_of(spec, tidy, rule, grid)
    result = AdaptiveAnalysis(design, grid, contrasts, replay(grid, contrasts, design))
    if (grid.seeds() >= design.max_seeds).all():
        result.fixed = replay(grid, contrasts, design, fixed=True)
    return result


def targets_of(spec, tidy: pd.DataFrame, rule: FailureRule, grid: Grid) -> list[Contrast]:
    """Main effects, and the claims' contrasts of the spec's companion (from the start seeds' trials, which every
    config has: the same targets whichever round the study is in)."""
    factor_levels = factor_levels_of(spec)
    contrasts = main_effects(grid.labels, factor_levels)
    companion = companion_of(spec)
    if factor_levels and companion is not None:
        start = tidy[tidy["seed"].isin(spec.seeds[:spec.adaptive.start_seeds])]
        marked = mark_failures(impute_diverged(start), rule.with_best(best_config_mean(start, list(factor_levels))))
        contrasts += claim_contrasts(companion.claims(marked, factor_levels), grid.labels, factor_levels)
    return contrasts
