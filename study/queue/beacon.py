"""A worker's heartbeat thread: keeps the trials it holds alive in the queue and says it is alive."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict
from typing import Any

from study.core.errors import StoreFault
from study.queue.protocol import Queue
from study.queue.records import Lease, WorkerRecord

LOG = logging.getLogger(__name__)


class Beacon:
    """A thread that beats for the trial this worker holds and says the worker is alive.

    Optuna's own heartbeat thread only runs inside `Study.optimize`; our workers drive
    the queue themselves (they must not ask a sampler for a grid), so they beat here.
    A beat while the database is briefly unreachable waits for it (the queue's StoreGuard);
    when the queue gives up, or its disk is full, the thread stops, keeps the fault in
    `fault` and calls `on_fault` (the worker stops at once and reports it).
    """

    def __init__(self, queue: Queue, record: WorkerRecord,
                 on_fault: Callable[[StoreFault], None] = lambda fault: None) -> None:
        self.queue = queue
        self.record = record
        self.on_fault = on_fault
        self.fault: StoreFault | None = None
        self._leases: tuple[Lease, ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="study-beacon", daemon=True)

    def __enter__(self) -> Beacon:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with suppress(StoreFault) if kind is not None else nullcontext():  # never hide why the worker stops
            self.update(state="stopped", trial=None)

    @contextmanager
    def hold(self, leases: Sequence[Lease]) -> Iterator[Sequence[Lease]]:
        """Beat for every trial of `leases` while the body runs (the worker reports it trains them)."""
        with self._lock:
            self._leases = tuple(leases)
        self.update(state="training", trial=leases[0].number if leases else None)
        try:
            yield leases
        except BaseException:
            with self._lock:
                self._leases = ()
            with suppress(StoreFault):
                self.update(state="idle", trial=None)
            raise
        with self._lock:
            self._leases = ()
        self.update(state="idle", trial=None)

    def update(self, **changes: Any) -> None:
        """Change what the worker reports and beat at once."""
        with self._lock:
            self.record = WorkerRecord(**{**asdict(self.record), **changes})
        self.beat()

    def beat(self) -> None:
        """Beat now: a StoreFault is raised in the caller's thread (the beacon's own thread keeps it)."""
        with self._lock:
            self.record = WorkerRecord(**{**asdict(self.record), "last_seen": time.time()})
            record, leases = self.record, self._leases
        try:
            for lease in leases:
                self.queue.heartbeat(lease)
            self.queue.record_worker(record)
        except StoreFault:
            raise
        except Exception as exc:  # noqa: BLE001 - a missed beat is survivable; say so and go on
            LOG.warning("heartbeat of %s failed: %s: %s", record.worker, type(exc).__name__, exc)

    def _run(self) -> None:
        interval = self.queue.settings.heartbeat_interval_s
        while not self._stop.wait(interval):
            try:
                self.beat()
            except StoreFault as fault:
                self.fault = fault
                self.on_fault(fault)
                break
        if self.fault is None:  # after a fault, closing the session could only fail again
            self.queue.close()
