"""`python -m study status`: a study's standing as text (grid and tuning studies share the worker lines)."""

from __future__ import annotations

import time
from collections import Counter

from study.core.names import STATUS_ATTR
from study.core.status import NOT_RESULTS, TrialStatus
from study.core.text import format_duration, redact_url
from study.queue.progress import KEY_STATES, StudyStatus, split_workers
from study.queue.protocol import Queue
from study.queue.records import COMPLETED, FAILED, PRUNED, WorkerRecord


def grid_status_text(status: StudyStatus, spec_source: str) -> str:
    lines = [f"study {status.study} ({spec_source}); queue {redact_url(status.storage)}"]
    parts = [f"{state} {status.keys[state]}" for state in KEY_STATES if status.keys[state]]
    lines.append(f"trials: {status.done}/{status.total} done" + (f" ({', '.join(parts)})" if parts else ""))
    if status.attempts:
        labels = {"interrupted": "interrupted and re-queued", "lost": "lost with their worker and re-queued",
                  "duplicate": "duplicates dropped", "failed": "failed (rerun the study to retry)"}
        lines.append("attempts: " + ", ".join(f"{n} {labels.get(kind, kind)}"
                                              for kind, n in sorted(status.attempts.items())))
    lines += worker_lines(status.alive, status.gone)
    if status.complete:
        lines.append("ETA: complete")
    elif status.eta_s is not None:
        workers = max(1, len(status.alive))
        lines.append(f"ETA: {format_duration(status.eta_s)} (mean {status.mean_trial_s:.1f} s per trial, "
                     f"{workers} worker{'s' if workers > 1 else ''})"
                     + ("" if status.alive else "; no worker is running: start one with `study run` or `study worker`"))
    else:
        lines.append("ETA: unknown until a trial completes")
    return "\n".join(lines)


def tune_status_text(queue: Queue, name: str, source: str, n_trials: int, metric: str,
                     direction: str) -> str:
    """A tuning study: results towards n_trials, what runs, the best so far, workers, ETA."""
    trials = queue.trials()
    lost = TrialStatus.LOST.value
    by_state = Counter(t.state_name for t in trials
                       if not (t.state == FAILED and t.user_attrs.get(STATUS_ATTR, lost) in NOT_RESULTS))
    attempts = Counter(t.user_attrs.get(STATUS_ATTR, lost) for t in trials
                       if t.state == FAILED and t.user_attrs.get(STATUS_ATTR, lost) in NOT_RESULTS)
    results = by_state["COMPLETE"] + by_state["PRUNED"]
    lines = [f"tuning study {name} ({source}); queue {redact_url(queue.url)}",
             f"results: {results}/{n_trials} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) + ")"]
    if attempts:
        lines.append("attempts not counted: " + ", ".join(f"{n} {kind}" for kind, n in sorted(attempts.items())))
    complete = [t for t in trials if t.state == COMPLETED and t.value is not None]
    if complete:
        best = (max if direction == "maximize" else min)(complete, key=lambda t: t.value)
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best {metric} {best.value:.4f} (trial #{best.number}: {params})")
    alive, gone = split_workers(queue, time.time())
    lines += worker_lines(alive, gone)
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state in (COMPLETED, PRUNED) and t.datetime_start and t.datetime_complete]
    left = max(0, n_trials - results)
    if not left:
        lines.append("ETA: complete")
    elif durations:
        mean = sum(durations) / len(durations)
        lines.append(f"ETA: {format_duration(mean * left / max(1, len(alive)))} (mean {mean:.1f} s per trial, "
                     f"{max(1, len(alive))} worker(s))")
    else:
        lines.append("ETA: unknown until a trial finishes")
    return "\n".join(lines)


def worker_lines(alive: list[WorkerRecord], gone: list[WorkerRecord]) -> list[str]:
    now = time.time()
    names = ", ".join(f"{w.worker} ({_doing(w)}, seen {format_duration(now - w.last_seen)} ago)" for w in alive)
    lines = [f"workers alive: {len(alive)}" + (f" - {names}" if alive else "")]
    if gone:
        lines.append(f"workers gone: {len(gone)} (last: {gone[-1].worker}, "
                     f"{gone[-1].state}, seen {format_duration(now - gone[-1].last_seen)} ago)")
    return lines


def _doing(worker: WorkerRecord) -> str:
    return f"training trial {worker.trial}" if worker.state == "training" and worker.trial is not None else worker.state
