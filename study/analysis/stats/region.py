"""The region a practitioner would use: a sub-grid near the top where every trial learns.

Effects and importance averaged over a whole grid include corners no one would choose (sigmoid with
N(0, 1) init under SGD): there batch norm "raises accuracy by 22 pp" because it rescues failures.
Inside the region the question is the practitioner's: among sensible choices, what still matters?

The region is a rectangle (a set of levels per factor), so it is itself a balanced factorial and every
block analysis and the decomposition apply unchanged. By default it is found from the data:
1. near-top configs: every seed learns and the mean lies within `margin` of the best config's mean;
2. per factor, the levels that occur among them;
3. while the rectangle still holds a config with a seed that does not learn, drop the one level whose
   removal keeps the most near-top configs and removes the most such configs (greedy; each drop is
   recorded).
A spec's `region:` names the levels per factor instead (`region: {activation: [relu], ...}`), or sets
the margin (`region: {margin_pp: 2.0}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from study.analysis.stats.failures import LEARNED
from study.analysis.stats.intervals import level_column

MARGIN = 0.01  # 1 pp of val accuracy


@dataclass
class Region:
    levels: dict[str, list[str]]  # every factor -> the levels kept (reference order)
    how: str  # "default" (found from the data) or "spec" (the spec's `region:`)
    margin: float = MARGIN
    near_top: int = 0  # configs within the margin whose every seed learns
    configs: int = 0  # configs in the rectangle
    drops: list[str] = field(default_factory=list)  # levels dropped to keep out configs that do not learn

    @property
    def varying(self) -> dict[str, list[str]]:
        return {f: lv for f, lv in self.levels.items() if len(lv) > 1}

    @property
    def fixed(self) -> dict[str, str]:
        return {f: lv[0] for f, lv in self.levels.items() if len(lv) == 1}

    def describe(self) -> str:
        return ", ".join(f"{f} ∈ {{{', '.join(lv)}}}" if len(lv) > 1 else f"{f} = {lv[0]}" if lv else f"{f}: none"
                         for f, lv in self.levels.items())  # none: no config near the top learns on every seed


def config_table(frame: pd.DataFrame, factors: list[str], metric: str) -> pd.DataFrame:
    """Per config: mean of `metric` and whether every seed learned."""
    columns = [level_column(f) for f in factors]
    learned = frame[LEARNED] if LEARNED in frame else pd.Series(True, index=frame.index)
    return (frame.assign(_learned=learned.astype(bool))
            .groupby(columns, observed=True).agg(mean=(metric, "mean"), all_learn=("_learned", "all"))
            .reset_index())


def default_region(frame: pd.DataFrame, factor_levels: dict[str, list[str]], metric: str,
                   margin: float = MARGIN) -> Region | None:
    """The region found from the data (see the module docstring); None when no config learns on every seed
    (tiny or failing studies): there is no region near the top to describe."""
    factors = list(factor_levels)
    configs = config_table(frame, factors, metric)
    learning = configs[configs["all_learn"]]
    if learning.empty:
        return None
    best = learning["mean"].max()
    near = learning[learning["mean"] >= best - margin]
    levels = {f: [lv for lv in factor_levels[f] if lv in set(near[level_column(f)])] for f in factors}
    region = Region(levels, "default", margin, near_top=len(near))
    while True:
        inside = _inside(configs, region.levels)
        bad = inside[~inside["all_learn"]]
        if bad.empty:
            break
        best_drop, best_score = None, None
        for factor, kept in region.levels.items():
            if len(kept) < 2:
                continue
            for level in kept:
                trial = {**region.levels, factor: [lv for lv in kept if lv != level]}
                rect = _inside(configs, trial)
                near_kept = len(_inside(near, trial))
                score = (near_kept, -int((~rect["all_learn"]).sum()))
                if best_score is None or score > best_score:
                    best_drop, best_score = (factor, level), score
        if best_drop is None:  # every factor down to one level and still a failing config: keep it, say so
            region.drops.append("a config with a seed that does not learn is left in (no level left to drop)")
            break
        factor, level = best_drop
        region.levels[factor] = [lv for lv in region.levels[factor] if lv != level]
        region.drops.append(f"{factor}={level}")
    region.configs = len(_inside(configs, region.levels))
    region.near_top = len(_inside(near, region.levels))
    return region


def spec_region(filters: dict[str, list[str]], frame: pd.DataFrame, factor_levels: dict[str, list[str]],
                metric: str) -> Region:
    """The spec's region: the named levels per factor, every level of the factors it does not name."""
    levels = {f: [lv for lv in factor_levels[f] if lv in filters[f]] if f in filters else list(factor_levels[f])
              for f in factor_levels}
    configs = config_table(frame, list(factor_levels), metric)
    inside = _inside(configs, levels)
    return Region(levels, "spec", configs=len(inside), near_top=0)


def region_frame(frame: pd.DataFrame, region: Region) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for factor, kept in region.levels.items():
        mask &= frame[level_column(factor)].isin(kept)
    return frame[mask].reset_index(drop=True)


def _inside(configs: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    mask = pd.Series(True, index=configs.index)
    for factor, kept in levels.items():
        mask &= configs[level_column(factor)].isin(kept)
    return configs[mask]
