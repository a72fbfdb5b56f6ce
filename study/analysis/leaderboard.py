"""The one leaderboard: configs ranked by mean final val accuracy over seeds, diverged trials at chance.

The report's leaderboard and a tuning spec's `base_from` both rank with this, so they
can never name different "best" configs.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.runs import CONFIG_COLUMNS, hyperparameter_columns, trials_frame
from study.analysis.stats.configs import config_summary
from study.analysis.stats.divergence import impute_diverged
from study.config import TrialConfig

RANKED_BY = "final_val_accuracy"
METRICS = ("final_val_accuracy", "test_accuracy", "final_val_loss")


def leaderboard(frame: pd.DataFrame, factors: list[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Per config: n, mean, std and interval over seeds of val/test accuracy and val loss, best first.

    Configs are told apart by their factor levels (`factors`) or by raw config `columns`.
    """
    return config_summary(impute_diverged(frame), factors or [], METRICS, columns=columns)


def best_config(study_name: str) -> TrialConfig | None:
    """The finished study's best config (seed 0), or None if it has no finished trials."""
    frame = trials_frame(study_name)
    if frame.empty:
        return None
    columns = [c for c in CONFIG_COLUMNS if c in frame] + hyperparameter_columns(frame)
    keyed = frame.assign(**{c: frame[c].map(str) for c in columns})  # None groups like any value
    top = leaderboard(keyed, columns=columns).iloc[0]
    row = frame.loc[(keyed[columns] == top[columns]).all(axis=1)].iloc[0]
    return TrialConfig.from_values({c: _plain(row[c]) for c in columns})


def _plain(value: object) -> object:
    """A pandas cell as the Python value a TrialConfig holds (None for a missing train_subset)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
