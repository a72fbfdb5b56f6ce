"""`study tune`: run a tuning study on the shared workers, then retrain base vs tuned on fresh seeds."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any


from study.core.errors import Interrupted
from study.core.names import OPTUNA_STUDY_TAG
from study.core.text import format_duration, redact_url
from study.data.arrays import DatasetArrays
from study.data.splits import SplitCache
from study.execution.bootstrap import bootstrap
from study.execution.launch import announce_data, start_workers, verify_data
from study.execution.processes import threads_per_worker
from study.execution.ray_cluster import RayCluster
from study.execution.signals import raise_interrupted
from study.execution.sources import WorkerOptions
from study.execution.tracked import run_tracked
from study.execution.tune_source import TuneSource, invocation_counts
from study.execution.worker_spec import WorkerSpec
from study.queue.trial_queue import TrialQueue
from study.spec.designs import Trial
from study.spec.kinds import data_configs
from study.spec.study_spec import spec_hash
from study.spec.tune_spec import TuneSpec
from study.tracking.environment import command_line
from study.tracking.runs import done_keys, log_json, log_metrics, log_study_data, parent_run, reap_dead_local_runs
from study.tracking.store import experiment_id
from study.training.executors.base import ExecutionSettings
from study.training.executors.registry import executor_for
from study.tuning.optuna_setup import arm_configs, counted_trials, search_corners

ARMS = ("base", "tuned")
LOG = logging.getLogger(__name__)


@dataclass
class TuneSummary:
    study: str
    n_trials: int
    done_before: int
    counts: dict[str, int] = field(default_factory=dict)  # results of this invocation's trials by state (Optuna's names)
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_number: int | None = None
    retrain_counts: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    run_id: str | None = None  # this invocation's MLflow run

    @property
    def ok(self) -> bool:
        return (self.counts.get("FAIL", 0) == 0 and self.retrain_counts.get("failed", 0) == 0
                and self.retrain_counts.get("interrupted", 0) == 0)


def run_tuning(spec: TuneSpec, queue: TrialQueue, tracking_uri: str | None = None, data_dir: str | None = None,
               retrain: bool = True, *, workers: int = 1,
               threads: int | None = None, data: dict[str, DatasetArrays] | None = None,
               ray: RayCluster | None = None) -> TuneSummary:
    """Run the study up to `n_trials` counted trials in total with `workers` workers, then retrain base vs
    tuned. Raises KeyboardInterrupt if the workers were stopped (their trials are re-queued).
    `data`: the datasets the caller already verified (the CLI does, before it opens the queue)."""
    done = counted_trials(queue)
    remaining = max(0, spec.n_trials - done)
    workers = max(1, min(workers, remaining or 1))
    threads = threads if threads is not None or ray is not None else threads_per_worker(workers)
    if data is None:
        data = verify_data([spec.base.dataset], data_dir)
        announce_data(data)
    own = threads if workers == 1 and ray is None else None  # this process retrains the arms, with N workers too
    uri = bootstrap(WorkerSpec(spec=spec.source, tracking_uri=tracking_uri, threads=own), spec, search_corners(spec),
                    announce=True)
    exp_id = experiment_id(spec.name, uri)
    reaped = reap_dead_local_runs(exp_id)
    if reaped:
        LOG.info(f"marked {reaped} run(s) left RUNNING by a dead process as interrupted")
    summary = TuneSummary(study=spec.name, n_trials=spec.n_trials, done_before=done)
    LOG.info(f"tune {spec.name}: {done} of {spec.n_trials} trials done, {remaining} to run "
        f"(sampler {spec.sampler.name}, pruner {spec.pruner.name}, {spec.metric}; Optuna {redact_url(queue.url)}, "
        f"MLflow {redact_url(uri)})")
    source_of_data = data[spec.base.dataset].source
    first_new = len(queue.trials())
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        with parent_run(exp_id, spec.name, spec_hash(spec.raw), command_line(),
                        {"kind": "tune", OPTUNA_STUDY_TAG: spec.name, "optuna_storage": redact_url(queue.url),
                         "data_source": source_of_data, "spec_file": spec.source}) as run:
            summary.run_id = run.info.run_id
            log_json(spec.raw, "spec.json")
            log_study_data(run.info.run_id, SplitCache(data_dir, data), data_configs(spec))
            if remaining:
                options = WorkerOptions(data_dir=data_dir, threads=threads, tracking_uri=uri,
                                        preloaded=data if workers == 1 and ray is None else {})
                count = workers if ray is None else remaining  # Ray: the cluster's plan decides, up to remaining
                interrupted = start_workers(spec, queue, TuneSource(spec), options, count, {}, ray=ray)
                summary.counts = invocation_counts(queue, first_new)
                if interrupted:
                    raise Interrupted()
            _record_best(queue, summary)
            if retrain:
                summary.retrain_counts = retrain_arms(spec, queue, exp_id, SplitCache(data_dir, data))
            log_metrics({f"trials_{k.lower()}": float(v) for k, v in summary.counts.items()})
            log_metrics({"trials_done": float(counted_trials(queue))})
            if summary.best_value is not None:
                log_metrics({"best_value": summary.best_value, f"best_{spec.metric}": summary.best_value})
    finally:
        signal.signal(signal.SIGTERM, previous)
        summary.wall_time_s = time.perf_counter() - started
    return summary


def _record_best(queue: TrialQueue, summary: TuneSummary) -> None:
    best = queue.best()
    if best is not None:
        summary.best_value, summary.best_params, summary.best_number = best.value, dict(best.params), best.number


def retrain_arms(spec: TuneSpec, queue: TrialQueue, exp_id: str, splits: SplitCache) -> dict[str, int]:
    """Train the untuned base and the best tuned config with every retrain seed (paired by seed).

    These are ordinary ablation-style trials (role `trial`, tag `level.arm`), so they
    resume by key like any ablation trial: a rerun trains only what is missing, and a
    new best config gets its own runs.
    """
    arms = arm_configs(spec, queue)
    if arms is None:
        LOG.info("retrain: no completed trial yet, nothing to compare")
        return {}
    done = done_keys(exp_id)
    trials: list[Trial] = []
    for seed in spec.retrain_seeds:
        for arm in ARMS:
            trial = Trial(arms[arm].replace(seed=seed), {"arm": arm})
            if trial.key not in done and trial.key not in {t.key for t in trials}:
                trials.append(trial)
    LOG.info(f"retrain: base vs tuned with seeds {list(spec.retrain_seeds)}: {len(trials)} trial(s) to run")
    settings = ExecutionSettings(steps_per_execution=spec.steps_per_execution)
    counts: dict[str, int] = {}
    for i, trial in enumerate(trials, start=1):
        outcome, = run_tracked([trial], spec.name, exp_id, splits, settings, executor_for(trial.config.executor))
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        acc = f"{outcome.val_accuracy:.4f}" if outcome.val_accuracy is not None else "n/a"
        LOG.info(f"[retrain {i}/{len(trials)}] {trial.levels['arm']:<5} seed={trial.config.seed} | {outcome.status:<9} "
            f"val_acc {acc} | {format_duration(outcome.seconds)}")
    return counts
