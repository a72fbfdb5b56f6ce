"""The adaptive design's statistics on planted truths (no training): simulated studies whose true effects are
known, decided round by round exactly as a study's workers decide them (study.analysis.sequential.replay).

Planted: a 2 x 2 x 3 grid; factor `a` has a large effect (+8 pp), `b` none, `c` a small one (+1.5 pp, beyond the
0.5 pp margin) and a negligible one (+0.1 pp, inside it). Seed noise has a part every config shares (one seed
moves every config, as on the lesson grid) and a config's own part, of unequal size across configs. A wrong
decision: `higher`/`lower` where the true effect is inside the margin or of the other sign, `equivalent` where it
is outside; `in`/`out` of the top group against the true means. The rate of wrong decisions must stay at or
below alpha (the intervals are repeated confidence intervals, valid at every look), and the trials spent must
be fewer than the fixed design's at max_seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from study.analysis.adaptive_targets import config_labels, main_effects
from study.analysis.sequential import (EQUIVALENT, HIGHER, IN, LOWER, OPEN, OUT, PRIMARY, TOP_GROUP, Grid,
                                       SequentialDesign, replay)

LEVELS = {"a": ["a0", "a1"], "b": ["b0", "b1"], "c": ["c0", "c1", "c2"]}
EFFECTS = {"a": {"a1": 0.08}, "b": {"b1": 0.0}, "c": {"c1": 0.015, "c2": 0.001}}
BASE = 0.88
STUDIES = 250


def true_means(labels: list[tuple[str, ...]]) -> np.ndarray:
    return np.array([BASE + sum(EFFECTS[f].get(level, 0.0) for f, level in zip(LEVELS, label)) for label in labels])


def simulate(rng: np.random.Generator, means: np.ndarray, seeds: int) -> np.ndarray:
    """configs x seeds accuracies: a shared seed effect (0.3 pp) plus each config's own noise (0.15-0.6 pp)."""
    own = np.linspace(0.0015, 0.006, means.size)[rng.permutation(means.size)]
    shared = rng.normal(0.0, 0.003, size=seeds)
    return np.clip(means[:, None] + shared[None, :] + own[:, None] * rng.normal(size=(means.size, seeds)), 0, 1)


def wrong(decision: str, truth: float, margin: float) -> bool:
    return {HIGHER: truth <= margin, LOWER: truth >= -margin, EQUIVALENT: abs(truth) >= margin}.get(decision, False)


def run_studies(design: SequentialDesign, studies: int = STUDIES, seed: int = 0) -> dict:
    labels = config_labels(LEVELS)
    means = true_means(labels)
    contrasts = main_effects(labels, LEVELS)
    truth = {c.name: sum(w * means[i] for i, w in c.weights) for c in contrasts}
    gap = means.max() - means
    rng = np.random.default_rng(seed)
    counts = {"decided": 0, "wrong": 0, "trials": 0, "fixed_trials": 0, "open": 0, "targets": 0}
    per_target: dict[str, int] = {}
    for _ in range(studies):
        values = simulate(rng, means, design.max_seeds)
        grid = Grid(labels, {PRIMARY: values}, np.ones_like(values, dtype=bool))
        result = replay(grid, contrasts, design)
        assert result.finished
        counts["trials"] += sum(r.trials for r in result.rounds)
        counts["fixed_trials"] += len(labels) * design.max_seeds
        for decision in result.decisions.values():
            counts["targets"] += 1
            if decision.decision == OPEN:
                counts["open"] += 1
                continue
            counts["decided"] += 1
            if decision.kind == TOP_GROUP:
                config = labels.index(tuple(decision.target.split(": ", 1)[1].split(" ")))
                bad = (decision.decision == IN and gap[config] >= design.margin) or \
                      (decision.decision == OUT and gap[config] <= design.margin)
            else:
                bad = wrong(decision.decision, truth[decision.target], design.margin)
            counts["wrong"] += bad
            per_target[decision.target] = per_target.get(decision.target, 0) + bad
    counts["per_target"] = per_target
    return counts


@pytest.mark.parametrize("spending", ["pocock", "obrien_fleming"])
def test_wrong_decisions_stay_below_alpha_and_the_design_saves_trials(spending):
    design = SequentialDesign(start_seeds=2, max_seeds=10, margin=0.005, alpha=0.05, spending=spending)
    counts = run_studies(design)
    rate = counts["wrong"] / counts["decided"]
    assert counts["decided"] > 0.8 * counts["targets"], counts  # the design decides most targets
    assert rate <= design.alpha, counts
    worst = max(counts["per_target"].values()) / STUDIES
    assert worst <= design.alpha + 3 * (design.alpha * (1 - design.alpha) / STUDIES) ** 0.5, counts["per_target"]
    assert counts["trials"] < 0.85 * counts["fixed_trials"], counts  # fewer trials than the fixed design


def test_a_target_at_the_margin_is_futile_only_from_futility_from_and_stops_asking_for_seeds(monkeypatch):
    from study.analysis import sequential

    levels = {"a": ["a0", "a1"], "b": ["b0", "b1"]}
    labels = config_labels(levels)
    design = SequentialDesign(start_seeds=2, max_seeds=10, margin=0.005)
    means = np.array([BASE + (design.margin if label[0] == "a1" else 0.0) for label in labels])
    contrasts = [c for c in main_effects(labels, levels) if c.name.startswith("a:")]
    rng = np.random.default_rng(1)
    grids = [Grid(labels, {PRIMARY: v}, np.ones_like(v, dtype=bool))
             for v in (simulate(rng, means, design.max_seeds) for _ in range(100))]

    def spent() -> tuple[list[int], list[sequential.Decision]]:
        results = [replay(grid, contrasts, design, top_group=False) for grid in grids]
        return [sum(r.trials for r in result.rounds) for result in results], \
            [result.decisions[contrasts[0].name] for result in results]

    trials, decisions = spent()
    futile = [d for d in decisions if d.futile]
    assert len(futile) >= 50, [round(d.power, 3) for d in decisions]  # an effect at the margin: undecidable
    assert all(d.seeds >= sequential.FUTILITY_FROM * design.max_seeds for d in futile)  # never before FUTILITY_FROM of max_seeds
    monkeypatch.setattr(sequential, "FUTILITY", 0.0)  # the rule off: every open target asks until max_seeds
    trials_without, decisions_without = spent()
    assert np.mean(trials) < 0.8 * np.mean(trials_without), (np.mean(trials), np.mean(trials_without))
    changed = [(a.decision, b.decision) for a, b in zip(decisions, decisions_without)
               if a.decision != OPEN and a.decision != b.decision]
    assert not changed, changed  # stopping early never changes a decision it made
