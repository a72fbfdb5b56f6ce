"""Optuna tuning of a base config's numeric fields; every Optuna trial is one tracked training run.

Roles are kept apart (Keras Tuner's oracle/tuner split): Optuna decides what to try
(sampler) and what to stop early (pruner) and keeps every trial in its storage, so
rerunning the same spec continues the same study; `study.runner.run_tracked` trains
and records each trial as an MLflow child run. Both sides link to each other, as in
optuna-integration's MLflowCallback: the run id is an Optuna user attr, the Optuna
study, trial number and state are tags on the run.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from study.designs import Trial
from study.spec import SpecError
from study.tune_spec import Param, TuneSpec, with_base

if TYPE_CHECKING:
    from study.engine import QueueSettings, TrialQueue

from study.engine import KEY_ATTR, RUN_ID_ATTR, STATUS_ATTR, WORKER_ATTR

EPOCHS_ATTR = "epochs_run"
OPTUNA_STUDY_TAG, NUMBER_TAG, STATE_TAG = "optuna_study", "optuna_trial_number", "optuna_state"
TUNE_ROLE = "tune_trial"
ARMS = ("base", "tuned")
# What resume counts towards n_trials: results. Failed trials are tried again, like failed ablation trials.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Study user attrs that must match on resume: a different space or base would mix two searches.
IDENTITY_ATTRS = ("base_config", "search_space", "metric")


class TrialFailed(RuntimeError):
    """Training raised; Optuna records the trial as FAIL and the study goes on."""


class TrialLost(RuntimeError):
    """The queue gave the trial to another worker while this one trained it (no heartbeat for too long)."""


@dataclass
class TuneSummary:
    study: str
    n_trials: int
    done_before: int
    counts: dict[str, int] = field(default_factory=dict)  # results of this invocation's trials by Optuna state
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_number: int | None = None
    retrain_counts: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.counts.get("FAIL", 0) == 0 and self.retrain_counts.get("failed", 0) == 0
                and self.retrain_counts.get("interrupted", 0) == 0)


# --------------------------------------------------------------------------- storage and study


def open_queue(spec: TuneSpec, url: str, settings: QueueSettings | None = None) -> TrialQueue:
    """The tuning study as a queue any worker can join (study.engine: heartbeats, SQLite
    serialised): created, or loaded to resume; a different search under the same name is refused."""
    from study.engine import QueueSettings, TrialQueue

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
    base = {k: v for k, v in spec.base.as_dict().items() if k not in spec.space}
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
        return
    if study.get_trials(deepcopy=False):
        raise SpecError(spec.source, "name", f"the Optuna study {spec.name!r} in this storage is not a tuning study "
                                             "(e.g. an ablation queue of that name): give this one another name")
    for key, value in mine.items():
        study.set_user_attr(key, value)
    study.set_user_attr("spec_file", spec.source)
    for point, label in enqueued_points(spec):
        study.enqueue_trial(point, user_attrs={"enqueued": label}, skip_if_exists=True)


def enqueued_points(spec: TuneSpec) -> list[tuple[dict[str, Any], str]]:
    """The base (when inside the space) and the spec's `enqueue` points, tried first.

    Trying the base first means the search starts from what it must beat. A grid is
    enqueued whole instead (in a seeded random order, as GridSampler visits it): taken
    from the queue atomically, each point is trained once however many workers share
    the study, which GridSampler alone does not guarantee (optuna#2039, #4627).
    """
    if spec.sampler.name == "grid":
        import itertools
        import random

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


def counted_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED_STATES))


def resolve_base_from(spec: TuneSpec, tracking_uri: str | None) -> TuneSpec:
    """Turn `base_from: <ablation study>` into that study's best config (mean val accuracy over seeds)."""
    if spec.base_from is None:
        return spec
    from study import analysis, tracking

    uri = tracking.configure(tracking_uri)
    found = analysis.best_config(spec.base_from)
    if found is None:
        raise SpecError(spec.source, "base_from", f"no finished trials of the ablation study {spec.base_from!r} in "
                                                  f"{uri}: run it first (python -m study run ...) or name another")
    return with_base(spec, found[0])


# --------------------------------------------------------------------------- one trial


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.is_int:
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    return params


class Objective:
    """Train the trial's config through the shared tracked-trial path and return its metric.

    Pruned trials raise TrialPruned (Optuna: PRUNED; MLflow: `pruned`, FINISHED); a
    training error raises TrialFailed (FAIL / `failed`); a diverged trial without any
    finite epoch returns NaN (FAIL). A worker that lost its claim while training
    (`still_ours` false at the end) raises TrialLost: the trial is someone else's now.
    """

    def __init__(self, spec: TuneSpec, splits, settings, extra_callbacks: tuple = (),
                 still_ours: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self.splits = splits
        self.settings = settings
        self.extra_callbacks = extra_callbacks
        self.still_ours = still_ours

    def __call__(self, trial: optuna.Trial) -> float:
        from study import tracking
        from study.callbacks import OptunaPruning
        from study.runner import run_tracked

        spec = self.spec
        config = spec.config_for(suggest(trial, spec.space))
        trial.set_user_attr(KEY_ATTR, config.key())
        trial.set_user_attr(WORKER_ATTR, tracking.worker_id())
        pruning = OptunaPruning(trial, monitor=spec.metric, epochs=config.epochs)
        run_ids: list[str] = []

        def on_start(run_id: str) -> None:
            run_ids.append(run_id)
            trial.set_user_attr(RUN_ID_ATTR, run_id)

        try:
            outcome = run_tracked(
                Trial(config, {"optuna_trial": str(trial.number)}), spec.name, self.splits, self.settings,
                role=TUNE_ROLE, tags={OPTUNA_STUDY_TAG: spec.name, NUMBER_TAG: str(trial.number)},
                extra_callbacks=(pruning, *self.extra_callbacks), on_start=on_start, still_ours=self.still_ours,
                status_of=lambda result: "pruned" if pruning.pruned and result.status == "completed" else result.status)
        except KeyboardInterrupt:
            _tag_state(run_ids, "FAIL")
            raise
        if outcome.status == "lost":
            _tag_state(run_ids, "FAIL")
            raise TrialLost(outcome.error)
        epochs_run = outcome.result.epochs_run if outcome.result is not None else 0
        trial.set_user_attr(STATUS_ATTR, outcome.status)
        trial.set_user_attr(EPOCHS_ATTR, epochs_run)
        if outcome.status == "pruned":
            _tag_state(run_ids, "PRUNED")
            raise optuna.TrialPruned(f"pruned after {pruning.pruned_at} of {config.epochs} epochs")
        if outcome.status == "failed":
            _tag_state(run_ids, "FAIL")
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "training failed")
        final = outcome.result.final
        if "test_accuracy" in final:
            trial.set_user_attr("test_accuracy", final["test_accuracy"])
        value = final.get(f"final_{spec.metric}")
        if value is None or not math.isfinite(value):
            _tag_state(run_ids, "FAIL")
            return float("nan")
        _tag_state(run_ids, "COMPLETE")
        return float(value)


def _tag_state(run_ids: list[str], state: str) -> None:
    """Mirror the Optuna state on the (already ended) MLflow run."""
    import mlflow

    for run_id in run_ids:
        mlflow.MlflowClient().set_tag(run_id, STATE_TAG, state)


# --------------------------------------------------------------------------- a whole invocation


def run_tuning(
    spec: TuneSpec,
    queue: TrialQueue,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    retrain: bool = True,
    log: Callable[[str], None] = print,
    *,
    workers: int = 1,
    threads: int | None = None,
) -> TuneSummary:
    """Run the study up to `n_trials` counted trials in total with `workers` workers, then
    retrain base vs tuned. One worker runs in this process; more are `python -m study worker`
    processes on the same queue, exactly what a worker on another machine runs.
    Raises KeyboardInterrupt if the workers were stopped (their trials are re-queued)."""
    from study import tracking
    from study.backend import select_backend
    from study.engine import redact
    from study.runner import Interrupted, spec_hash
    from study.tune_source import TuneSource, invocation_counts
    from study.worker import (
        WorkerOptions,
        run_worker,
        spawn_workers,
        threads_per_worker,
    )

    study = queue.study
    done = counted_trials(study)
    remaining = max(0, spec.n_trials - done)
    workers = max(1, min(workers, remaining or 1))
    threads = threads if threads is not None else threads_per_worker(workers)
    select_backend(spec.base.backend, threads=threads if workers == 1 else None)
    uri = tracking.configure(tracking_uri)
    exp_id = tracking.experiment_id(spec.name, uri)
    reaped = tracking.reap_dead_local_runs(exp_id)
    if reaped:
        log(f"marked {reaped} run(s) left RUNNING by a dead process as interrupted")
    summary = TuneSummary(study=spec.name, n_trials=spec.n_trials, done_before=done)
    log(f"tune {spec.name}: {done} of {spec.n_trials} trials done, {remaining} to run "
        f"(sampler {spec.sampler.name}, pruner {spec.pruner.name}, {spec.metric}; Optuna {redact(queue.url)}, "
        f"MLflow {uri})")

    from study.data import SplitCache, load_mnist

    mnist = load_mnist(data_dir)  # a bad --data-dir fails here (exit 2), not in N workers
    log(f"data: {mnist.source} (checksums verified)")
    first_new = len(queue.trials())
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted(Interrupted))
    try:
        with tracking.parent_run(exp_id, spec.name, spec_hash(spec), tracking.command_line(),
                                 {"kind": "tune", OPTUNA_STUDY_TAG: spec.name, "optuna_storage": redact(queue.url),
                                  "data_source": mnist.source, "spec_file": spec.source}):
            tracking.log_json(spec.raw, "spec.json")
            if remaining:
                options = WorkerOptions(data_dir=data_dir, threads=threads, tracking_uri=uri, log=log,
                                        mnist=mnist if workers == 1 else None)
                if workers == 1:
                    interrupted = run_worker(spec, queue, TuneSource(spec), options).interrupted
                else:
                    log(f"starting {workers} worker processes ({threads or 'default'} thread(s) each)")
                    interrupted = spawn_workers(spec, queue.url, uri, workers, options, log=log)
                summary.counts = invocation_counts(queue, first_new)
                if interrupted:
                    raise Interrupted()
            _record_best(study, summary)
            if retrain:
                summary.retrain_counts = retrain_arms(spec, study, exp_id, SplitCache(mnist), log)
            import mlflow

            mlflow.log_metrics({f"trials_{k.lower()}": float(v) for k, v in summary.counts.items()})
            if summary.best_value is not None:
                mlflow.log_metric("best_value", summary.best_value)
    finally:
        signal.signal(signal.SIGTERM, previous)
        summary.wall_time_s = time.perf_counter() - started
    return summary


def _record_best(study: optuna.Study, summary: TuneSummary) -> None:
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        summary.best_value, summary.best_params, summary.best_number = best.value, dict(best.params), best.number


def arm_configs(spec: TuneSpec, study: optuna.Study) -> dict[str, Any] | None:
    """{'base': config, 'tuned': config} (seed unset), or None before any trial completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return {"base": spec.base, "tuned": spec.config_for(study.best_trial.params)}


def retrain_arms(spec: TuneSpec, study: optuna.Study, exp_id: str, splits,
                 log: Callable[[str], None]) -> dict[str, int]:
    """Train the untuned base and the best tuned config with every retrain seed (paired by seed).

    These are ordinary ablation-style trials (role `trial`, tag `level.arm`), so they
    resume by key like any ablation trial: a rerun trains only what is missing, and a
    new best config gets its own runs.
    """
    from study import tracking
    from study.runner import format_duration, run_one
    from study.train import ExecutionSettings

    arms = arm_configs(spec, study)
    if arms is None:
        log("retrain: no completed trial yet, nothing to compare")
        return {}
    done = tracking.done_keys(exp_id)
    trials = []
    for seed in spec.retrain_seeds:
        for arm in ARMS:
            trial = Trial(arms[arm].replace(seed=seed), {"arm": arm})
            if trial.key not in done and trial.key not in {t.key for t in trials}:
                trials.append(trial)
    log(f"retrain: base vs tuned with seeds {list(spec.retrain_seeds)}: {len(trials)} trial(s) to run")
    settings = ExecutionSettings(steps_per_execution=spec.steps_per_execution)
    counts: dict[str, int] = {}
    for i, trial in enumerate(trials, start=1):
        status, val_acc, seconds = run_one(trial, spec.name, splits, settings)
        counts[status] = counts.get(status, 0) + 1
        acc = f"{val_acc:.4f}" if val_acc is not None else "n/a"
        log(f"[retrain {i}/{len(trials)}] {trial.levels['arm']:<5} seed={trial.config.seed} | {status:<9} "
            f"val_acc {acc} | {format_duration(seconds)}")
    return counts


def _raise_interrupted(exc_type: type[BaseException]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        raise exc_type()

    return handler
