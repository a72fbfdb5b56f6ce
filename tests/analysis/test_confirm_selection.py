"""Which configs the confirm stage re-runs: decided from the main results alone, the same in every worker."""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.confirm import confirm_trials
from study.spec.study_spec import parse_spec
from tests.synthetic import synthetic

SPEC = parse_spec({"name": "s", "lesson": True, "seeds": [0, 1, 2], "base": {"init": "xavier"}, "factors": {
    "init": ["normal", "xavier", "he"], "optimizer": [{"sgd": {"optimizer": "sgd", "learning_rate": 0.01}},
                                                      {"adam": {"optimizer": "adam", "learning_rate": 0.001}}],
    "dropout": [0.0, 0.2]}, "confirm": {"top_k": 2, "seeds": [10, 11]}})


def main_results(rng: np.random.Generator) -> pd.DataFrame:
    """Synthetic results keyed like the spec's trials (what MLflow would hold)."""
    frame = synthetic(rng)
    keys = {(t.levels["init"], t.levels["optimizer"], t.levels["dropout"], t.config.seed): t.key
            for t in SPEC.unique_trials()}
    frame["trial_key"] = [keys[(r.level_init, r.level_optimizer, r.level_dropout, r.seed)]
                          for r in frame.itertuples()]
    return frame


def test_top_k_and_the_path_on_new_seeds_once_every_main_trial_is_done():
    frame = main_results(np.random.default_rng(50))
    assert confirm_trials(SPEC, frame.iloc[1:]) is None  # one main result missing: not decided yet
    trials = confirm_trials(SPEC, frame)
    configs = {(t.levels["init"], t.levels["optimizer"], t.levels["dropout"]) for t in trials}
    assert {t.config.seed for t in trials} == {10, 11} and len(trials) == 2 * len(configs)
    means = frame.groupby(["level_init", "level_optimizer", "level_dropout"])["final_val_accuracy"].mean()
    assert set(means.sort_values(ascending=False).index[:2]) <= configs  # the top 2 of the main seeds
    assert ("xavier", "sgd", "0.0") in configs  # the path starts at the lesson's first model
    assert all(t.key not in set(frame["trial_key"]) for t in trials)  # new seeds: new keys
    shuffled = confirm_trials(SPEC, frame.sample(frac=1, random_state=3))
    assert [t.key for t in shuffled] == [t.key for t in trials]  # the same in every worker
    without = parse_spec({k: v for k, v in SPEC.raw.items() if k != "confirm"})
    assert confirm_trials(without, frame) == []


def test_ties_are_broken_the_same_way_whatever_the_row_order():
    frame = main_results(np.random.default_rng(51)).assign(final_val_accuracy=0.9)  # every config ties
    first = [t.key for t in confirm_trials(SPEC, frame)]
    assert first == [t.key for t in confirm_trials(SPEC, frame.iloc[::-1])]
