"""Learning curves per level with seed bands."""

from __future__ import annotations

import pandas as pd

from study.analysis.stats.intervals import level_column


def seed_bands(curves: pd.DataFrame, frame: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame:
    """Per level and epoch: mean over seeds of the seed's mean curve, and its min and max.

    Within a seed, the curves of every trial at the level (all other factors) are
    averaged first, so the band shows seed-to-seed variation, not config spread.
    """
    column = level_column(factor)
    data = curves[curves["metric"] == metric].merge(frame[["run_id", "seed", column]], on="run_id")
    per_seed = data.groupby([column, "seed", "epoch"], observed=True)["value"].mean().reset_index()
    bands = per_seed.groupby([column, "epoch"], observed=True)["value"].agg(["mean", "min", "max", "count"])
    return bands.reset_index().rename(columns={column: "level", "count": "seeds"})
