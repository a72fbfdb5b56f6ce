"""Each arm's search as its own Optuna study (`<study>/arm/<arm>`), for optuna-dashboard.

The tuning trials themselves are ordinary trials of the study's queue (one per point and tuning
seed, exactly once); what a user wants to look at is each arm's search: one Optuna trial per point,
its params, its value (the mean val accuracy over the tuning seeds) and the per-seed values. Written
when the arm's tuning is decided, by whichever worker decides it, under the store's lock
(study.core.store_lock); writing again adds only the points the study lacks (a rerun after a crash
completes it, a second writer finds it complete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import TrialState, create_trial

from study.spec.tune_spec import Param
from study.tuning.arm_sampler import METRIC, distributions

POINT_ATTR = "point"  # user attr: the point's position in the arm's search


@dataclass(frozen=True)
class ArmPoint:
    index: int
    params: dict[str, Any]
    value: float  # mean over the tuning seeds
    per_seed: dict[int, float] = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # the queue trials (one per tuning seed) behind it
    pruned: bool = False


def arm_study_name(study: str, arm: str) -> str:
    return f"{study}/arm/{arm}"


def write_arm_studies(storage: optuna.storages.BaseStorage, study: str, space: dict[str, Param],
                      points: dict[str, list[ArmPoint]], chosen: dict[str, dict[str, Any]]) -> int:
    """Add each arm's points its Optuna study lacks; return how many trials were added."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(space)
    added = 0
    for arm, rows in points.items():
        name = arm_study_name(study, arm)
        try:
            target = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        except DuplicatedStudyError:
            target = optuna.load_study(storage=storage, study_name=name)
        if target.metric_names != [METRIC]:
            target.set_metric_names([METRIC])
        target.set_user_attr("study", study)
        target.set_user_attr("tuned", {k: v for k, v in chosen.get(arm, {}).items()})
        have = {t.user_attrs.get(POINT_ATTR) for t in target.get_trials(deepcopy=False)}
        for point in rows:
            if point.index in have:
                continue
            target.add_trial(create_trial(
                state=TrialState.COMPLETE, params=point.params, distributions=dists,
                value=point.value if math.isfinite(point.value) else 0.0,
                user_attrs={POINT_ATTR: point.index, "per_seed": {str(s): v for s, v in point.per_seed.items()},
                            "trial_keys": list(point.keys), "pruned": point.pruned}))
            added += 1
    return added
