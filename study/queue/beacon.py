"""A worker's heartbeat thread: keeps the trials it holds alive in the queue and says it is alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from study.queue.trial_queue import Claim, TrialQueue, WorkerRecord


class Beacon:
    """A thread that beats for the trial this worker holds and says the worker is alive.

    Optuna's own heartbeat thread only runs inside `Study.optimize`; our workers drive
    the queue themselves (they must not ask a sampler for a grid), so they beat here.
    A failed beat (database briefly unreachable) is retried on the next tick; if beats
    fail for longer than the grace period, the trial is re-queued and `holds()` says so.
    """

    def __init__(self, queue: TrialQueue, record: WorkerRecord) -> None:
        self.queue = queue
        self.record = record
        self._trial_ids: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="study-beacon", daemon=True)

    def __enter__(self) -> Beacon:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.update(state="stopped", trial=None)

    @contextmanager
    def hold(self, claims: Sequence[Claim]) -> Iterator[Sequence[Claim]]:
        """Beat for every trial of `claims` while the body runs (the worker reports it trains them)."""
        with self._lock:
            self._trial_ids = tuple(c.trial_id for c in claims)
        self.update(state="training", trial=claims[0].number if claims else None)
        try:
            yield claims
        finally:
            with self._lock:
                self._trial_ids = ()
            self.update(state="idle", trial=None)

    def update(self, **changes: Any) -> None:
        """Change what the worker reports and beat at once."""
        with self._lock:
            self.record = WorkerRecord(**{**asdict(self.record), **changes})
        self.beat()

    def beat(self) -> None:
        with self._lock:
            self.record = WorkerRecord(**{**asdict(self.record), "last_seen": time.time()})
            record, trial_ids = self.record, self._trial_ids
        try:
            for trial_id in trial_ids:
                self.queue.heartbeat(trial_id)
            self.queue.record_worker(record)
        except Exception as exc:  # noqa: BLE001 - a missed beat is survivable; say so and go on
            print(f"warning: heartbeat of {record.worker} failed: {type(exc).__name__}: {exc}", flush=True)

    def _run(self) -> None:
        interval = self.queue.settings.heartbeat_interval_s
        while not self._stop.wait(interval):
            self.beat()
        self.queue.storage.remove_session()
