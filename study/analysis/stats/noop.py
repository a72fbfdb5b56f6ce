"""No-op detection: say when a level changed nothing, instead of testing a difference that is not there.

Two kinds of evidence, both counts rather than p-values:
- pairs whose metric is bit-identical between the level and its reference (same block, same seed):
  the level did not change the kept model at all (in the block tables as `equal_pairs`);
- for learning-rate schedules, the trials in which the logged learning rate actually changed during
  training: ReduceLROnPlateau that never fired is the constant schedule under another name.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.stats.intervals import level_column

LR_CHANGED = "lr_changed"


def learning_rate_changes(curves: pd.DataFrame) -> pd.Series:
    """Per run id: True if the logged learning rate took more than one value over the epochs."""
    rates = curves[curves["metric"] == "learning_rate"] if not curves.empty else curves
    if rates.empty:
        return pd.Series(dtype=bool, name=LR_CHANGED)
    spread = rates.groupby("run_id")["value"].agg(["min", "max"])
    return (spread["max"] != spread["min"]).rename(LR_CHANGED)


def noop_table(frame: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """Per level vs reference: identical pairs (k of n) and, where learning rates were logged, in how
    many trials of the level and of the reference the learning rate changed during training."""
    rows = []
    changed = frame[LR_CHANGED] if LR_CHANGED in frame else None
    for _, effect in effects.iterrows():
        row = {"factor": effect["factor"], "level": effect["level"], "reference": effect["reference"],
               "pairs": int(effect["pairs"]), "equal_pairs": int(effect["equal_pairs"]),
               "equal_values": int(effect.get("equal_values", effect["equal_pairs"])),
               "verdict": effect["verdict"]}
        if changed is not None:
            column = level_column(effect["factor"])
            for side in ("level", "reference"):
                mask = (frame[column] == effect[side]) & changed.notna()
                row[f"{side}_trials"] = int(mask.sum())
                row[f"{side}_lr_changed"] = int(changed[mask].astype(bool).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def schedule_factors(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> list[str]:
    """Factors that set the learning-rate schedule: each level has one `schedule`, and the levels differ in it
    (only for these does "the learning rate changed" tell whether a level acted)."""
    if LR_CHANGED not in frame or "schedule" not in frame:
        return []
    out = []
    for factor in factor_levels:
        per_level = frame.groupby(level_column(factor), observed=True)["schedule"].nunique()
        if len(per_level) > 1 and (per_level == 1).all() and frame["schedule"].nunique() > 1:
            out.append(factor)
    return out
