"""Where a queued study stands: trials by state, workers seen alive, ETA (`python -m study status`).

Read from the Optuna storage only, so it is quick and works from any machine that
can reach the storage. Every count is per trial *key* (one grid point and seed), so
retries and dropped duplicates never inflate "completed".
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from study.engine import KEY_ATTR, STATUS_ATTR, TrialQueue, WorkerRecord

if TYPE_CHECKING:
    from study.tune_spec import TuneSpec

# Why an attempt ended FAIL (user attr `trial_status`); no attr = its worker died (heartbeat went stale).
ATTEMPT_KINDS = ("interrupted", "failed", "duplicate", "lost")
KEY_STATES = ("completed", "diverged", "running", "waiting", "failed", "interrupted", "lost", "not queued")


@dataclass
class StudyStatus:
    study: str
    storage: str
    total: int
    keys: Counter = field(default_factory=Counter)  # key state -> number of keys of the spec
    attempts: Counter = field(default_factory=Counter)  # FAIL attempts by kind (each was re-queued or dropped)
    alive: list[WorkerRecord] = field(default_factory=list)
    gone: list[WorkerRecord] = field(default_factory=list)
    mean_trial_s: float | None = None
    eta_s: float | None = None

    @property
    def done(self) -> int:
        return self.keys["completed"] + self.keys["diverged"]

    @property
    def complete(self) -> bool:
        return self.done == self.total


def attempt_kind(trial: FrozenTrial) -> str:
    return trial.user_attrs.get(STATUS_ATTR) or "lost"


def key_states(trials: list[FrozenTrial], keys: list[str]) -> dict[str, str]:
    """Each key's state: done if any attempt completed, else running, waiting, or how its last attempt ended."""
    by_key: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        key = trial.user_attrs.get(KEY_ATTR)
        if key is not None:
            by_key.setdefault(key, []).append(trial)
    out = {}
    for key in keys:
        attempts = by_key.get(key, [])
        states = {t.state for t in attempts}
        if TrialState.COMPLETE in states:
            done = next(t for t in attempts if t.state == TrialState.COMPLETE)
            out[key] = "diverged" if done.user_attrs.get(STATUS_ATTR) == "diverged" else "completed"
        elif TrialState.RUNNING in states:
            out[key] = "running"
        elif TrialState.WAITING in states:
            out[key] = "waiting"
        elif attempts:
            last = max(attempts, key=lambda t: t.number)
            out[key] = {"duplicate": "failed"}.get(attempt_kind(last), attempt_kind(last))
        else:
            out[key] = "not queued"
    return out


def collect(queue: TrialQueue, keys: list[str], now: float | None = None) -> StudyStatus:
    """Snapshot of the study for the given spec keys (one read of all trials, one of the worker records)."""
    now = time.time() if now is None else now
    trials = queue.trials()
    status = StudyStatus(study=queue.study.study_name, storage=queue.url, total=len(keys))
    status.keys.update(key_states(trials, keys).values())
    status.attempts.update(attempt_kind(t) for t in trials if t.state == TrialState.FAIL)
    status.alive, status.gone = split_workers(queue, now)
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete
                 and not t.user_attrs.get("recovered")]
    if durations:
        status.mean_trial_s = sum(durations) / len(durations)
        remaining = status.keys["waiting"] + status.keys["running"] / 2 + status.keys["not queued"]
        remaining += status.keys["interrupted"] + status.keys["lost"]
        status.eta_s = status.mean_trial_s * remaining / max(1, len(status.alive))
    return status


def format_status(status: StudyStatus, spec_source: str) -> str:
    from study.engine import redact
    from study.runner import format_duration

    lines = [f"study {status.study} ({spec_source}); queue {redact(status.storage)}"]
    parts = [f"{state} {status.keys[state]}" for state in KEY_STATES if status.keys[state]]
    lines.append(f"trials: {status.done}/{status.total} done" + (f" ({', '.join(parts)})" if parts else ""))
    if status.attempts:
        labels = {"interrupted": "interrupted and re-queued", "lost": "lost with their worker and re-queued",
                  "duplicate": "duplicates dropped", "failed": "failed (rerun the study to retry)"}
        lines.append("attempts: " + ", ".join(f"{n} {labels.get(kind, kind)}"
                                              for kind, n in sorted(status.attempts.items())))
    lines += _worker_lines(status.alive, status.gone)
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


def split_workers(queue: TrialQueue, now: float) -> tuple[list[WorkerRecord], list[WorkerRecord]]:
    """(alive, gone): a worker is alive while its last beat is within the grace period and it has not stopped."""
    alive, gone = [], []
    for record in queue.workers():
        fresh = now - record.last_seen <= queue.settings.grace_period_s
        (alive if fresh and record.state != "stopped" else gone).append(record)
    return alive, gone


def _worker_lines(alive: list[WorkerRecord], gone: list[WorkerRecord]) -> list[str]:
    from study.runner import format_duration

    now = time.time()
    names = ", ".join(f"{w.worker} ({_doing(w)}, seen {format_duration(now - w.last_seen)} ago)" for w in alive)
    lines = [f"workers alive: {len(alive)}" + (f" - {names}" if alive else "")]
    if gone:
        lines.append(f"workers gone: {len(gone)} (last: {gone[-1].worker}, "
                     f"{gone[-1].state}, seen {format_duration(now - gone[-1].last_seen)} ago)")
    return lines


def format_tune_status(queue: TrialQueue, spec: TuneSpec) -> str:
    """A tuning study: results towards n_trials, what runs, the best so far, workers, ETA."""
    from study.engine import redact
    from study.runner import format_duration
    from study.tune_source import NOT_RESULTS

    trials = queue.trials()
    by_state = Counter(t.state.name for t in trials
                       if not (t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR, "lost") in NOT_RESULTS))
    attempts = Counter(t.user_attrs.get(STATUS_ATTR, "lost") for t in trials
                       if t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR, "lost") in NOT_RESULTS)
    results = by_state["COMPLETE"] + by_state["PRUNED"]
    lines = [f"tuning study {spec.name} ({spec.source}); queue {redact(queue.url)}",
             f"results: {results}/{spec.n_trials} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))
             + ")"]
    if attempts:
        lines.append("attempts not counted: " + ", ".join(f"{n} {kind}" for kind, n in sorted(attempts.items())))
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = (max if spec.direction == "maximize" else min)(complete, key=lambda t: t.value)
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best {spec.metric} {best.value:.4f} (trial #{best.number}: {params})")
    alive, gone = split_workers(queue, time.time())
    lines += _worker_lines(alive, gone)
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_start and t.datetime_complete]
    left = max(0, spec.n_trials - results)
    if not left:
        lines.append("ETA: complete")
    elif durations:
        mean = sum(durations) / len(durations)
        lines.append(f"ETA: {format_duration(mean * left / max(1, len(alive)))} (mean {mean:.1f} s per trial, "
                     f"{max(1, len(alive))} worker(s))")
    else:
        lines.append("ETA: unknown until a trial finishes")
    return "\n".join(lines)


def _doing(worker: WorkerRecord) -> str:
    return f"training trial {worker.trial}" if worker.state == "training" and worker.trial is not None else worker.state
