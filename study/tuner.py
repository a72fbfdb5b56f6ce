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
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.designs import Trial
from study.spec import SpecError
from study.tune_spec import Param, TuneSpec, with_base

DEFAULT_STORAGE = "optuna.db"
RUN_ID_ATTR, KEY_ATTR, STATUS_ATTR, EPOCHS_ATTR, WORKER_ATTR = (
    "mlflow_run_id", "trial_key", "trial_status", "epochs_run", "worker")
OPTUNA_STUDY_TAG, NUMBER_TAG, STATE_TAG = "optuna_study", "optuna_trial_number", "optuna_state"
TUNE_ROLE = "tune_trial"
ARMS = ("base", "tuned")
# What resume counts towards n_trials: results. Failed trials are tried again, like failed ablation trials.
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Study user attrs that must match on resume: a different space or base would mix two searches.
IDENTITY_ATTRS = ("base_config", "search_space", "metric")


class StorageError(RuntimeError):
    """The Optuna storage URL cannot be opened."""


class TrialFailed(RuntimeError):
    """Training raised; Optuna records the trial as FAIL and the study goes on."""


@dataclass
class TuneSummary:
    study: str
    n_trials: int
    done_before: int
    counts: dict[str, int] = field(default_factory=dict)  # Optuna states of this invocation's trials
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


def default_storage_url(project_dir: Path | None = None) -> str:
    """OPTUNA_STORAGE if set, else a SQLite file beside the MLflow store in the project directory."""
    if os.environ.get("OPTUNA_STORAGE"):
        return os.environ["OPTUNA_STORAGE"]
    return f"sqlite:///{(project_dir or Path.cwd()).resolve() / DEFAULT_STORAGE}"


def redact(url: str) -> str:
    """The URL without its password, for tags and reports."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given (it has no password to hide)
        return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so a trial whose process died (SIGKILL, power loss)
    is marked FAIL by the next trial instead of staying RUNNING forever (optuna#820 family)."""
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and the way to reap dead trials
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=30, grace_period=120,
                engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite") else None)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        raise StorageError(f"--storage {redact(url)}: cannot open: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0]}") from exc


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


def open_study(spec: TuneSpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or load it to resume; refuse to resume a different search under the same name."""
    study = optuna.create_study(storage=storage, study_name=spec.name, direction=spec.direction,
                                sampler=make_sampler(spec), pruner=make_pruner(spec), load_if_exists=True)
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
        return study
    for key, value in mine.items():
        study.set_user_attr(key, value)
    study.set_user_attr("spec_file", spec.source)
    for point, label in enqueued_points(spec):
        study.enqueue_trial(point, user_attrs={"enqueued": label}, skip_if_exists=True)
    return study


def enqueued_points(spec: TuneSpec) -> list[tuple[dict[str, Any], str]]:
    """The base (when inside the space) and the spec's `enqueue` points, tried first.

    Trying the base first means the search starts from what it must beat. The grid
    sampler only evaluates its own grid, so nothing is enqueued for it.
    """
    if spec.sampler.name == "grid":
        return []
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
    finite epoch returns NaN, which Optuna records as FAIL.
    """

    def __init__(self, spec: TuneSpec, splits, settings) -> None:
        self.spec = spec
        self.splits = splits
        self.settings = settings

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
                extra_callbacks=(pruning,), on_start=on_start,
                status_of=lambda result: "pruned" if pruning.pruned and result.status == "completed" else result.status)
        except KeyboardInterrupt:
            _tag_state(run_ids, "FAIL")
            raise
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
    storage: optuna.storages.BaseStorage,
    storage_url: str,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    retrain: bool = True,
    log: Callable[[str], None] = print,
) -> TuneSummary:
    """Run the study up to `n_trials` counted trials in total, then retrain base vs tuned."""
    from study import tracking
    from study.backend import select_backend
    from study.runner import Interrupted, spec_hash

    select_backend(spec.base.backend)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress line per trial is ours
    uri = tracking.configure(tracking_uri)
    study = open_study(spec, storage)
    exp_id = tracking.experiment_id(spec.name, uri)
    reaped = tracking.reap_dead_local_runs(exp_id)
    if reaped:
        log(f"marked {reaped} run(s) left RUNNING by a dead process as interrupted")
    done = counted_trials(study)
    summary = TuneSummary(study=spec.name, n_trials=spec.n_trials, done_before=done)
    remaining = max(0, spec.n_trials - done)
    log(f"tune {spec.name}: {done} of {spec.n_trials} trials done, {remaining} to run "
        f"(sampler {spec.sampler.name}, pruner {spec.pruner.name}, {spec.metric}; Optuna {redact(storage_url)}, "
        f"MLflow {uri})")

    from study.data import SplitCache, load_mnist
    from study.train import ExecutionSettings

    mnist = load_mnist(data_dir)
    log(f"data: {mnist.source} (checksums verified)")
    splits = SplitCache(mnist)
    # Tuning trials keep no model file (dozens of them); the retrained arms do.
    settings = ExecutionSettings(steps_per_execution=spec.steps_per_execution, save_model=False)
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted(Interrupted))
    try:
        with tracking.parent_run(exp_id, spec.name, spec_hash(spec), tracking.command_line(),
                                 {"kind": "tune", OPTUNA_STUDY_TAG: spec.name, "optuna_storage": redact(storage_url),
                                  "data_source": mnist.source, "spec_file": spec.source}):
            tracking.log_json(spec.raw, "spec.json")
            if remaining:
                progress = Progress(spec, done, remaining, log, summary)
                study.optimize(Objective(spec, splits, settings), n_trials=remaining, timeout=spec.timeout,
                               callbacks=[optuna.study.MaxTrialsCallback(spec.n_trials, states=COUNTED_STATES),
                                          progress],
                               catch=(TrialFailed,))
            _record_best(study, summary)
            if retrain:
                summary.retrain_counts = retrain_arms(spec, study, exp_id, splits, log)
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


class Progress:
    """One line per finished trial: count, params, state, value, epochs, time, best so far, ETA."""

    def __init__(self, spec: TuneSpec, done_before: int, to_run: int, log: Callable[[str], None],
                 summary: TuneSummary) -> None:
        self.spec, self.done_before, self.to_run, self.log, self.summary = spec, done_before, to_run, log, summary
        self.started = time.perf_counter()
        self.finished = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.finished += 1
        state = trial.state.name
        self.summary.counts[state] = self.summary.counts.get(state, 0) + 1
        params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        epochs = f"{len(trial.intermediate_values)}/{self.spec.config_for(trial.params).epochs} ep"
        # A pruned trial's value is the last value it reported (Optuna's convention), not a final result.
        value = "" if trial.value is None else f"{self.spec.metric} {trial.value:.4f}"
        if state == "PRUNED" and value:
            value = f"at stop {value}"
        best = ""
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = f"best {study.best_value:.4f} (#{study.best_trial.number})"
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.finished * max(0, self.to_run - self.finished)
        from study.runner import format_duration

        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        self.log(f"[{self.done_before + self.finished}/{self.spec.n_trials}] #{trial.number} {params} | {state:<8} "
                 f"{value} | {epochs} | {seconds:.1f}s | {best} | ETA {format_duration(eta)}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _raise_interrupted(exc_type: type[BaseException]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        raise exc_type()

    return handler
