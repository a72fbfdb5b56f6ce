"""`tune_each_arm` with `sampler: tpe`: each arm's next point, and whether a running tuning trial is pruned.

Both are pure functions of results already recorded, so every worker (and the report, replaying the
search) reaches the same point: the next point comes from Optuna's TPESampler over an in-memory study
holding the arm's earlier points (seeded by study, arm and point number, so two workers asking at once
propose the same point, whose trials the queue then enqueues once). Pruning is Optuna's MedianPruner
over the arm's earlier learning curves on the same tuning seed, fed each epoch through the trial's
hooks as `study tune` feeds its pruner.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from study.spec.tune_spec import Param

METRIC = "val_accuracy"


def startup_trials(trials: int) -> int:
    """Random points before TPE models the arm (a third of the budget, at least two)."""
    return max(2, math.ceil(trials / 3))


def distributions(space: dict[str, Param]) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, p in space.items():
        if p.is_int:
            out[name] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            out[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


def _seed(*parts: object) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def propose(study: str, arm: str, space: dict[str, Param], trials: int,
            history: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """The arm's next point given its earlier points and their mean values (in the order they were tried)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=_seed(study, arm, len(history)), n_startup_trials=startup_trials(trials))
    memory = optuna.create_study(direction="maximize", sampler=sampler)
    dists = distributions(space)
    for params, value in history:
        memory.add_trial(create_trial(params=params, distributions=dists, value=value))
    params = memory.ask(dists).params
    return {name: (params[name] if space[name].is_int else _rounded(params[name], space[name])) for name in space}


def _rounded(value: float, param: Param) -> float:
    """Six significant digits (readable, stable keys), never outside the range."""
    return min(max(float(f"{value:.6g}"), param.low), param.high)


class MedianRule:
    """Optuna's MedianPruner for one running trial, against the arm's earlier curves on its tuning seed.

    `earlier`: each earlier point's per-epoch val accuracy (epoch index -> value). As `study tune`, a step is
    the number of epochs completed; the first `startup` earlier curves only inform (none prunes before)."""

    def __init__(self, earlier: list[dict[int, float]], startup: int) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize",
                                         pruner=optuna.pruners.MedianPruner(n_startup_trials=startup))
        for curve in earlier:
            finite = {epoch + 1: v for epoch, v in curve.items() if math.isfinite(v)}
            if finite:
                self.study.add_trial(create_trial(state=TrialState.COMPLETE, value=finite[max(finite)],
                                                  intermediate_values=finite))
        self.trial = self.study.ask()

    def __call__(self, epoch: int, logs: dict[str, float]) -> bool:
        value = logs.get(METRIC)
        if value is None or not math.isfinite(value):
            return False  # a diverged epoch is the executor's business
        self.trial.report(float(value), epoch + 1)
        return self.trial.should_prune()
