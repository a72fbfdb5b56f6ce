"""The does-not-learn rule reads the majority-class rate off the labels the trials were validated on."""

from __future__ import annotations

import pytest

from study.analysis.chance import failure_rule
from study.config import TrialConfig


def test_majority_class_rate_of_each_validation_split(data_dir):
    holdout = failure_rule(TrialConfig(validation="holdout"), str(data_dir))
    assert holdout.majority_rate == pytest.approx(0.1090)  # 1,090 sevens in the last 10,000 training images
    assert "10,000 validation labels" in holdout.source
    assert holdout.threshold == pytest.approx(0.1590)
    test = failure_rule(TrialConfig(validation="test"), str(data_dir))
    assert test.majority_rate == pytest.approx(0.1135)  # 1,135 ones in the test set


def test_without_the_data_one_over_classes_stands_in_and_says_so(tmp_path):
    rule = failure_rule(TrialConfig(validation="holdout"), str(tmp_path))  # an empty data directory
    assert rule.majority_rate == pytest.approx(0.1) and "could not be read" in rule.source
