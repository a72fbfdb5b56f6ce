"""The validation set's majority-class rate: what a model that predicts one class for every image scores.

A trial that does not learn predicts (about) one class for every image, so it scores that class's share
of the validation set, at most the majority-class rate, not 1 / classes: MNIST's holdout (the last 10,000
training images) is 10.90% sevens and 10.64% ones (where most of the lesson grid's failed trials sit).
The rate is read off the labels of the validation split the trials used; when the data is not at hand,
1 / classes stands in and the report says so.
"""

from __future__ import annotations

import numpy as np

from study.analysis.stats.failures import FailureRule
from study.config import TrialConfig
from study.data.registry import dataset_info, load_dataset


def validation_labels(config: TrialConfig, data_dir: str | None = None) -> np.ndarray:
    """The labels the trials were validated on (the same rule as study.data.splits.make_splits)."""
    data = load_dataset(config.dataset, data_dir)
    if config.validation == "test":
        return np.asarray(data.y_test)
    if data.y_val is not None:
        return np.asarray(data.y_val)
    return np.asarray(data.y_train)[-dataset_info(config.dataset).holdout_size:]


def failure_rule(config: TrialConfig, data_dir: str | None = None) -> FailureRule:
    """The does-not-learn rule for trials like `config` (dataset and validation split)."""
    try:
        labels = validation_labels(config, data_dir)
        counts = np.bincount(labels.astype(int))
        return FailureRule(float(counts.max() / counts.sum()),
                           source=f"the most frequent class of the {len(labels):,} validation labels",
                           validation_size=int(len(labels)))
    except Exception as exc:  # noqa: BLE001 - no data here: the report still works with 1 / classes
        info = dataset_info(config.dataset)
        size = info.holdout_size if config.validation == "holdout" else 0
        return FailureRule(1.0 / info.num_classes, validation_size=size,
                           source=f"1 / {info.num_classes} classes (the validation labels could not be "
                                  f"read: {type(exc).__name__})")
