"""`study run` and `study tune` start the same way: verify the data, open the stores, start the workers.

One worker runs in this process; more are `python -m study worker` processes on the
same queue, exactly what a worker on another machine runs; with `--ray` they are Ray
actors running the same worker loop (study.execution.ray_workers). The data is loaded and
verified before any queue, experiment or run is created, so bad data (exit 2) leaves
nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from study.core.status import DONE_STATUSES, TrialStatus
from study.core.text import redact
from study.data.arrays import DatasetArrays
from study.data.registry import load_dataset
from study.execution.grid_source import GridSource
from study.execution.processes import spawn_workers, threads_per_worker
from study.execution.ray_cluster import RayCluster
from study.execution.sources import TrialSource, WorkerOptions
from study.execution.worker import run_worker
from study.queue.storage import QueueSettings, default_storage_url
from study.queue.trial_queue import TrialQueue
from study.spec.study_spec import StudySpec
from study.tracking.runs import done_keys, reap_dead_local_runs
from study.tracking.store import configure, experiment_id
from study.training.backend import select_backend


@dataclass
class RunSummary:
    study: str
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)  # trials by status at the end (completed: by this run)
    wall_time_s: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(self.counts.get(k, 0) == 0 for k in ("failed", "interrupted", "pending"))


def verify_data(datasets: Iterable[str], data_dir: str | None, log: Callable[[str], None]) -> dict[str, DatasetArrays]:
    """Load and verify every dataset the trials name (DataError, exit 2, before anything is created)."""
    loaded = {}
    for name in sorted(set(datasets)):
        loaded[name] = load_dataset(name, data_dir)
        log(f"data: {loaded[name].source} (checksums verified)")
    return loaded


def start_workers(spec, queue: TrialQueue, source: TrialSource, options: WorkerOptions, workers: int,
                  overrides: dict[str, str], log: Callable[[str], None], ray: RayCluster | None = None) -> bool:
    """Train with `workers` workers (this process, or N worker processes; with `ray`, Ray actors: the
    cluster's plan decides how many, at most `workers`); True if they were interrupted."""
    if ray is not None:
        from study.execution.ray_workers import run_on_ray  # imports Ray's module only when --ray is used

        return run_on_ray(ray, spec, queue, source, options, workers, log)
    if workers == 1:
        return run_worker(spec, queue, source, options).interrupted
    log(f"starting {workers} worker processes ({options.threads or 'default'} thread(s) each)")
    return spawn_workers(spec.source, queue.url, options.tracking_uri or "", workers, options, overrides, log=log)


def run_study(
    spec: StudySpec,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    overrides: dict[str, str] | None = None,
    steps_per_execution: int | None = None,
    log: Callable[[str], None] = print,
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
    if in_process:  # this process trains: its backend first (MNIST's web route imports Keras)
        select_backend(spec.base.backend, threads=threads)
    data = verify_data((t.config.dataset for t in trials), data_dir, log)
    uri = configure(tracking_uri)
    url = storage or default_storage_url(uri)
    queue = TrialQueue.open(url, spec.name, queue_settings or QueueSettings())
    exp_id = experiment_id(spec.name, uri)
    reaped = reap_dead_local_runs(exp_id)
    if reaped:
        log(f"marked {reaped} run(s) left RUNNING by a dead process on this host as interrupted")
    source = GridSource(spec)
    before = source.key_status(queue)
    missing = source.enqueue(queue, mlflow_done=done_keys(exp_id))
    done_before = {k for k, state in before.items() if state in DONE_STATUSES}
    summary = RunSummary(study=spec.name, total=len(trials), skipped=len(done_before))
    pending = len(trials) - summary.skipped
    log(f"study {spec.name}: {len(trials)} trials, {summary.skipped} already done, {pending} to run "
        f"(backend {spec.base.backend}, executor {spec.base.executor}; queue {redact(url)}, {missing} newly queued; "
        f"MLflow {redact(uri)})")
    started = time.perf_counter()
    if pending:
        options = WorkerOptions(data_dir=data_dir, steps_per_execution=steps_per_execution, threads=threads,
                                trial_figures=trial_figures, tracking_uri=uri, log=log, group_size=group_size,
                                preloaded=data if in_process else {})
        count = min(workers, pending) if ray is None else pending  # Ray: the cluster's plan decides, up to pending
        summary.interrupted = start_workers(spec, queue, source, options, count, overrides, log, ray=ray)
    summary.wall_time_s = time.perf_counter() - started
    for key, state in source.key_status(queue).items():
        if key not in done_before:
            name = state if state in (*DONE_STATUSES, TrialStatus.FAILED, TrialStatus.INTERRUPTED) else "pending"
            summary.counts[name] = summary.counts.get(name, 0) + 1
    return summary
