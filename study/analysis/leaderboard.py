"""The one leaderboard: configs ranked by mean final val accuracy over seeds, diverged trials at chance.

The report's leaderboard and a tuning spec's `base_from` both rank with this, so they
can never name different "best" configs. With a `confirm` stage the top is decided twice:
the main seeds pick the top-k configs, and those are ranked (and shown) by their mean over
the confirm seeds, which played no part in picking them.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.runs import CONFIG_COLUMNS, hyperparameter_columns, parent_runs, trials_frame
from study.analysis.stats.configs import config_summary
from study.analysis.stats.divergence import impute_diverged
from study.config import TrialConfig
from study.core.errors import InputError
from study.spec.confirm import ConfirmSpec
from study.spec.study_spec import parse_spec
from study.tracking.reading import run_json

RANKED_BY = "final_val_accuracy"
METRICS = ("final_val_accuracy", "test_accuracy", "final_val_loss")
CONFIRMED, MAIN = "confirmed", "main"


def leaderboard(frame: pd.DataFrame, factors: list[str] | None = None, columns: list[str] | None = None,
                validation_size: int = 0) -> pd.DataFrame:
    """Per config: n, mean, std and interval over seeds of val/test accuracy and val loss, best first.

    Configs are told apart by their factor levels (`factors`) or by raw config `columns`. With
    `validation_size`, the val accuracy's interval also carries the validation split's sampling error.
    """
    return config_summary(impute_diverged(frame), factors or [], METRICS, columns=columns,
                          validation_size=validation_size)


def ranked_leaderboard(frame: pd.DataFrame, main_seeds: tuple[int, ...], confirm: ConfirmSpec | None,
                       factors: list[str] | None = None, columns: list[str] | None = None,
                       validation_size: int = 0) -> pd.DataFrame:
    """The leaderboard with its `stage`: the confirmed top-k first (their numbers over the confirm seeds,
    ranked by that mean; `selection_mean` is their mean over the main seeds that picked them), then every
    other config over the main seeds."""
    main = leaderboard(frame[frame["seed"].isin(main_seeds)], factors, columns, validation_size)
    main.insert(0, "stage", MAIN)
    main["selection_mean"] = main[f"{RANKED_BY}_mean"]
    if confirm is None or main.empty:
        return main
    fresh = frame[frame["seed"].isin(confirm.seeds)]
    if fresh.empty:
        return main
    keys = columns if columns is not None else list(factors or [])
    top = main.head(confirm.top_k)
    confirmed = leaderboard(fresh, factors, columns, validation_size)
    confirmed = confirmed.merge(top[keys + ["selection_mean"]], on=keys, how="inner")
    if confirmed.empty:
        return main
    confirmed.insert(0, "stage", CONFIRMED)
    confirmed = confirmed.sort_values(f"{RANKED_BY}_mean", ascending=False, na_position="last")
    rest = main.merge(confirmed[keys], on=keys, how="left", indicator=True)
    rest = rest[rest.pop("_merge") == "left_only"]
    return pd.concat([confirmed, rest], ignore_index=True)


def best_config(study_name: str) -> TrialConfig | None:
    """The finished study's best config (seed 0), or None if it has no finished trials.

    The study's spec as its last invocation stored it tells the main seeds from the confirm seeds;
    without one every seed counts alike.
    """
    frame = trials_frame(study_name)
    if frame.empty:
        return None
    columns = [c for c in CONFIG_COLUMNS if c in frame] + hyperparameter_columns(frame)
    keyed = frame.assign(**{c: frame[c].map(str) for c in columns})  # None groups like any value
    spec = _stored_spec(study_name)
    if spec is not None and keyed["seed"].isin(spec.seeds).any():
        top = ranked_leaderboard(keyed, spec.seeds, spec.confirm, columns=columns).iloc[0]
    else:
        top = leaderboard(keyed, columns=columns).iloc[0]
    row = frame.loc[(keyed[columns] == top[columns]).all(axis=1)].iloc[0]
    return TrialConfig.from_values({c: _plain(row[c]) for c in columns})


def _stored_spec(study_name: str):  # noqa: ANN202 - a StudySpec or None
    """The spec the newest invocation logged (`spec.json` of its parent run), if any can be read."""
    runs = parent_runs(study_name)
    if not runs:
        return None
    raw = run_json(runs[0].run_id, "spec.json")
    if raw is None:
        return None
    try:
        return parse_spec(raw, source=f"spec of study {study_name}")
    except (ValueError, InputError):
        return None


def _plain(value: object) -> object:
    """A pandas cell as the Python value a TrialConfig holds (None for a missing train_subset)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
