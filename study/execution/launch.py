"""`study run` and `study tune` start the same way: verify the data, open the stores, start the workers.

One worker runs in this process; more are `python -m study worker` processes on the
same queue, exactly what a worker on another machine runs; with `--ray` they are Ray
actors running the same worker loop (study.execution.ray_workers). The data is loaded and
verified before any queue, experiment or run is created, so bad data (exit 2) leaves
nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from study.core.names import OPTUNA_STUDY_TAG
from study.core.status import DONE_STATUSES, TrialStatus
from study.core.text import redact_url
from study.data.arrays import DatasetArrays
from study.data.registry import load_dataset
from study.data.splits import SplitCache
from study.execution.adaptive_rounds import source_for
from study.execution.bootstrap import bootstrap
from study.execution.plan import first_line
from study.execution.processes import spawn_workers, threads_per_worker
from study.execution.ray_cluster import RayCluster
from study.execution.sources import TrialSource, WorkerOptions
from study.execution.worker import run_worker
from study.execution.worker_spec import WorkerSpec
from study.queue.storage import QueueSettings, default_storage_url
from study.queue.trial_queue import TrialQueue
from study.spec.study_spec import StudySpec, spec_hash
from study.tracking.environment import command_line
from study.tracking.record import MlflowRecord
from study.tracking.runs import active_run_id, log_json, log_study_data, parent_run, reap_dead_local_runs
from study.tracking.store import experiment_id
from study.tracking.summary import log_totals, study_totals
from study.training.backend import name_backend

LOG = logging.getLogger(__name__)


@dataclass
class RunSummary:
    study: str
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)  # trials by status at the end (completed: by this run)
    wall_time_s: float = 0.0
    interrupted: bool = False
    run_id: str | None = None  # this invocation's MLflow run (None if it had nothing to train)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(self.counts.get(k, 0) == 0 for k in ("failed", "interrupted", "pending"))


def verify_data(datasets: Iterable[str], data_dir: str | None) -> dict[str, DatasetArrays]:
    """Load and verify every dataset the trials name (DataError, exit 2, before anything is created)."""
    return {name: load_dataset(name, data_dir) for name in sorted(set(datasets))}


def announce_data(loaded: dict[str, DatasetArrays]) -> None:
    """Say where each verified dataset came from (a file, the cache, the web)."""
    for arrays in loaded.values():
        LOG.info(f"data: {arrays.source} (checksums verified)")


def start_workers(spec, queue: TrialQueue, source: TrialSource, options: WorkerOptions, workers: int,
                  overrides: dict[str, str], ray: RayCluster | None = None) -> bool:
    """Train with `workers` workers (this process, or N worker processes; with `ray`, Ray actors: the
    cluster's plan decides how many, at most `workers`); True if they were interrupted.

    Called inside the invocation's MLflow run: this process's worker records into it, worker
    processes (and Ray actors) nest their own runs under it.
    """
    if ray is not None:
        from study.execution.ray_workers import run_on_ray  # imports Ray's module only when --ray is used

        return run_on_ray(ray, spec, queue, options, workers)
    if workers == 1:
        return run_worker(spec, queue, source, options).interrupted
    LOG.info(f"starting {workers} worker processes ({options.threads or 'default'} thread(s) each)")
    worker = replace(options.worker_spec(), spec=spec.source, overrides=dict(overrides), storage_url=queue.url,
                     parent_run_id=active_run_id())
    return spawn_workers(worker, workers)


def run_study(
    spec: StudySpec,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    overrides: dict[str, str] | None = None,
    steps_per_execution: int | None = None,
    trial_figures: bool = False,
    *,
    workers: int = 1,
    storage: str | None = None,
    threads: int | None = None,
    group_size: int | None = None,
    queue_settings: QueueSettings | None = None,
    ray: RayCluster | None = None,
) -> RunSummary:
    """Queue every pending trial of `spec`, train them with `workers` processes (or Ray actors), return
    counts by status."""
    overrides = overrides or {}
    spec = spec.with_overrides(**overrides)
    trials = spec.unique_trials()
    workers = max(1, min(workers, len(trials)))
    in_process = ray is None and workers == 1
    threads = threads if threads is not None or ray is not None else threads_per_worker(workers)
    name_backend(spec.base.backend)  # MNIST's web route imports Keras
    data = verify_data((t.config.dataset for t in trials), data_dir)  # first: bad data exits 2
    if ray is None:
        LOG.info(first_line(spec, data, data_dir, workers))  # the prediction first, then what the data check found
    announce_data(data)
    uri = bootstrap(WorkerSpec(spec=spec.source, tracking_uri=tracking_uri, threads=threads), spec,
                    [t.config for t in trials], trains=in_process, announce=True)
    url = storage or default_storage_url(uri)
    queue = TrialQueue.open(url, spec.name, queue_settings or QueueSettings())
    exp_id = experiment_id(spec.name, uri)
    reaped = reap_dead_local_runs(exp_id)
    if reaped:
        LOG.info(f"marked {reaped} run(s) left RUNNING by a dead process on this host as interrupted")
    source = source_for(spec, data_dir)
    missing = source.enqueue(queue, record=MlflowRecord(exp_id, spec.name))  # MLflow is the record
    missing += source.confirm(queue)  # the confirm stage, if every main trial was already done
    before = source.key_status(queue)  # after queueing: a key queued again (its MLflow run lost) is not done
    trials = source.trials
    done_before = {k for k, state in before.items() if state in DONE_STATUSES}
    summary = RunSummary(study=spec.name, total=len(trials), skipped=len(done_before))
    pending = len(trials) - summary.skipped
    LOG.info(f"study {spec.name}: {len(trials)} trials, {summary.skipped} already done, {pending} to run"
        f"{'' if source.confirm_known else f' (then {source.later})'} "
        f"(backend {spec.base.backend}, executor {spec.base.executor}; queue {redact_url(url)}, {missing} newly queued; "
        f"MLflow {redact_url(uri)})")
    started = time.perf_counter()
    if pending:
        options = WorkerOptions(data_dir=data_dir, steps_per_execution=steps_per_execution, threads=threads,
                                trial_figures=trial_figures, tracking_uri=uri, group_size=group_size,
                                preloaded=data if in_process else {})
        if ray is not None:
            active = pending  # Ray: the cluster's plan decides how many actors, up to the trials left
        else:  # the confirm stage brings more work once the main trials are done
            active = min(workers, pending) if source.confirm_known and spec.adaptive is None else workers
        tags = {"data_source": ", ".join(d.source for d in data.values()), "spec_file": spec.source,
                OPTUNA_STUDY_TAG: spec.name, "kind": source.kind, "workers": str(active)}
        with parent_run(exp_id, spec.name, spec_hash(spec.raw), command_line(), tags) as run:
            log_json(spec.raw, "spec.json")
            log_study_data(run.info.run_id, SplitCache(data_dir, data), [t.config for t in trials])
            summary.run_id = run.info.run_id
            summary.interrupted = start_workers(spec, queue, source, options, active, overrides, ray=ray)
            source.confirm(queue)  # learn the confirm stage's keys if other processes queued and trained it
            log_totals(summary.run_id, study_totals(exp_id, set(source.keys)))
    summary.wall_time_s = time.perf_counter() - started
    source.confirm(queue)  # learn the confirm stage's keys if other processes queued and trained it
    summary.total = len(source.trials)
    for key, state in source.key_status(queue).items():
        if key not in done_before:
            name = state if state in (*DONE_STATUSES, TrialStatus.FAILED, TrialStatus.INTERRUPTED) else "pending"
            summary.counts[name] = summary.counts.get(name, 0) + 1
    return summary
