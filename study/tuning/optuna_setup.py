"""Optuna's side of a tuning study: sampler and pruner from the spec, the study's identity, its first points.

Roles are kept apart (Keras Tuner's oracle/tuner split): Optuna decides what to try
(sampler) and what to stop early (pruner) and keeps every trial in its storage, so
rerunning the same spec continues the same study; study.execution.tune_source trains
each trial through the shared tracked path.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any, Protocol

import optuna

from study.core.errors import SpecError
from study.core.store_lock import schema_lock
from study.queue.records import COMPLETED, PRUNED, QueuedTrial, QueueSettings
from study.queue.trial_queue import TrialQueue
from study.spec.tune_spec import Param, TuneSpec

# What resume counts towards n_trials: results. Failed trials are tried again, like failed ablation trials.
COUNTED_STATES = (COMPLETED, PRUNED)
# Study user attrs that must match on resume: a different space or base would mix two searches.
IDENTITY_ATTRS = ("base_config", "search_space", "metric")


def open_queue(spec: TuneSpec, url: str, settings: QueueSettings | None = None) -> TrialQueue:
    """The tuning study as a queue any worker can join (study.engine: heartbeats, SQLite
    serialised): created, or loaded to resume; a different search under the same name is refused."""
    # Under the store's lock: two commands starting one study together enqueue its first points once.
    with schema_lock(url, "storage"):
        queue = TrialQueue.open(url, spec.name, settings or QueueSettings(), direction=spec.direction,
                                sampler=make_sampler(spec), pruner=make_pruner(spec))
        assert queue is not None  # created if missing
        prepare_study(spec, queue.study)
    return queue


def make_sampler(spec: TuneSpec) -> optuna.samplers.BaseSampler:
    options = spec.sampler.options
    if spec.sampler.name == "tpe":
        return optuna.samplers.TPESampler(seed=options["seed"], n_startup_trials=options["n_startup_trials"],
                                          multivariate=options["multivariate"])
    if spec.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=options["seed"])
    return optuna.samplers.GridSampler(grid_space(spec), seed=options["seed"])


def grid_space(spec: TuneSpec) -> dict[str, list[float]]:
    return {name: param.grid(spec.sampler.options["points"]) for name, param in spec.space.items()}


def make_pruner(spec: TuneSpec) -> optuna.pruners.BasePruner:
    options = spec.pruner.options
    if spec.pruner.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options["n_startup_trials"],
                                           n_warmup_steps=options["n_warmup_steps"])
    if spec.pruner.name == "hyperband":
        # A trial's resource is its epochs (steps are epochs completed, see OptunaPruning).
        return optuna.pruners.HyperbandPruner(min_resource=options["min_resource"], max_resource=spec.base.epochs,
                                              reduction_factor=options["reduction_factor"])
    return optuna.pruners.NopPruner()


def identity(spec: TuneSpec) -> dict[str, str]:
    """What makes two invocations the same search (stored on the Optuna study)."""
    base = {k: v for k, v in spec.base.identity().items() if k not in spec.space}
    if "hparams" in base:  # the user's own hyperparameters: the searched ones are not part of the base either
        base["hparams"] = [[n, v] for n, v in base["hparams"] if n not in spec.space]
    return {"base_config": json.dumps(base, sort_keys=True),
            "search_space": json.dumps({n: p.as_dict() for n, p in spec.space.items()}, sort_keys=True),
            "metric": spec.metric}


def prepare_study(spec: TuneSpec, study: optuna.Study) -> None:
    """On a new study, record what makes it this search and enqueue the first points; on an
    existing one, refuse to resume a different search (or a study of another kind) under the same name."""
    if study.direction.name.lower() != spec.direction:
        raise SpecError(spec.source, "direction", f"the Optuna study {spec.name!r} in this storage was created to "
                                                  f"{study.direction.name.lower()}; use another name to start over")
    attrs = study.user_attrs
    mine = identity(spec)
    if all(k in attrs for k in IDENTITY_ATTRS):
        for key in IDENTITY_ATTRS:
            if attrs[key] != mine[key]:
                spec_key = {"base_config": "base", "search_space": "search_space", "metric": "metric"}[key]
                raise SpecError(spec.source, spec_key, f"differs from the Optuna study {spec.name!r} already in this "
                                                       f"storage (it has {attrs[key]}); resuming would mix two "
                                                       "searches: restore the spec or give the study a new name")
        _name_metric(spec, study)
        return
    if study.get_trials(deepcopy=False):
        raise SpecError(spec.source, "name", f"the Optuna study {spec.name!r} in this storage is not a tuning study "
                                             "(e.g. an ablation queue of that name): give this one another name")
    for key, value in mine.items():
        study.set_user_attr(key, value)
    study.set_user_attr("spec_file", spec.source)
    for point, label in enqueued_points(spec):
        study.enqueue_trial(point, user_attrs={"enqueued": label}, skip_if_exists=True)
    _name_metric(spec, study)


def _name_metric(spec: TuneSpec, study: optuna.Study) -> None:
    """The dashboard's axes name the objective (`val_accuracy`), not "Objective 0"."""
    if study.metric_names != [spec.metric]:
        study.set_metric_names([spec.metric])


def enqueued_points(spec: TuneSpec) -> list[tuple[dict[str, Any], str]]:
    """The base (when inside the space) and the spec's `enqueue` points, tried first.

    Trying the base first means the search starts from what it must beat. A grid is
    enqueued whole instead (in a seeded random order, as GridSampler visits it): taken
    from the queue atomically, each point is trained once however many workers share
    the study, which GridSampler alone does not guarantee (optuna#2039, #4627).
    """
    if spec.sampler.name == "grid":
        names = list(spec.space)
        grid = [dict(zip(names, values)) for values in itertools.product(*grid_space(spec).values())]
        random.Random(spec.sampler.options["seed"]).shuffle(grid)
        return [(point, "grid") for point in grid]
    points = []
    base = spec.base_params()
    if spec.enqueue_base and all(spec.space[n].contains(v) for n, v in base.items()):
        points.append((base, "base"))
    points.extend((point, "spec") for point in spec.enqueue)
    return points


def counted_trials(queue: TrialQueue) -> int:
    return len(queue.trials(COUNTED_STATES))


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.is_int:
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    return params


class HasBest(Protocol):
    def best(self) -> QueuedTrial | None: ...


def arm_configs(spec: TuneSpec, search: HasBest) -> dict[str, Any] | None:
    """{'base': config, 'tuned': config} (seed unset), or None before any trial completed.
    `search`: the study's queue, or its record for the report (study.tuning.search)."""
    best = search.best()
    if best is None:
        return None
    return {"base": spec.base, "tuned": spec.config_for(dict(best.params))}


def search_corners(spec: TuneSpec) -> list[Any]:
    """The base and the space's all-low and all-high points: the models a user builder is checked with first."""
    return [spec.base, spec.config_for({n: p.low for n, p in spec.space.items()}),
            spec.config_for({n: p.high for n, p in spec.space.items()})]
