"""Fixed-width lanes: a group is cut into programs of one width and a short one is padded with copies
(study.training.fused.lanes); that the numbers then do not depend on the group is checked by the
conformance suite (tests/executors, check_group_independent)."""

from __future__ import annotations

import numpy as np

from study.training.fused.lanes import WIDTH, lane_width, lanes_of, parts, stack


def test_one_width_per_platform_unless_overridden(monkeypatch):
    monkeypatch.delenv("STUDY_FUSED_LANES", raising=False)
    assert lane_width("cpu") == WIDTH["cpu"] and WIDTH["cpu"] % 2 == 0
    assert lane_width("gpu") >= lane_width("cpu")
    monkeypatch.setenv("STUDY_FUSED_LANES", "3")
    assert lane_width("cpu") == lane_width("gpu") == 3


def test_a_group_is_cut_into_programs_of_the_width():
    assert parts([7, 8, 9, 10, 11, 12, 13], 3) == [[7, 8, 9], [10, 11, 12], [13]]
    assert parts([4], 6) == [[4]]


def test_a_short_program_is_padded_with_copies_of_its_first_trial():
    first, second = [np.zeros((2, 3)), np.array(1.0)], [np.ones((2, 3)), np.array(2.0)]
    weights, scalar = stack([first, second], 4)
    assert weights.shape == (4, 2, 3) and scalar.shape == (4,)
    assert np.array_equal(np.asarray(scalar), [1.0, 2.0, 1.0, 1.0])
    assert np.array_equal(np.asarray(weights[3]), first[0])
    assert lanes_of([True, True], 4, False).tolist() == [True, True, False, False]
