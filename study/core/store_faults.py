"""Store faults while a study runs: ride out a store that is briefly unreachable, stop at once on a full disk.

A queue (Optuna) or tracking (MLflow) call that fails because its database or server cannot be
reached (connection refused or reset, the server closed the connection or is restarting,
SQLite's "database is locked" beyond the driver's own wait) is retried with exponential backoff
(tenacity) for up to the retry budget (`--store-retry-seconds`, or STUDY_STORE_RETRY_SECONDS;
default 120 s); then it is StoreUnavailable. A full disk (SQLite's "database or disk is full",
ENOSPC, PostgreSQL's "could not extend file") is StoreFull at once: waiting does not free space.
Any other error passes through untouched: it is the store's answer, not its absence.

Each call has the whole budget from its first failure, so a long study rides out any number of
short outages. The first call of a process to give up stops every other one (`give_up`): the
threads that were waiting too (a worker's heartbeat and its training loop), and the clean-up
calls after it, try once more and fail fast instead of waiting out another budget.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, stop_when_event_set, wait_exponential, wait_random

from study.core.errors import InputError, StoreFault, StoreFull, StoreUnavailable
from study.core.text import first_line, redact, redact_url

LOG = logging.getLogger(__name__)

RETRY_ENV = "STUDY_STORE_RETRY_SECONDS"
DEFAULT_RETRY_S = 120.0
WAIT = wait_exponential(multiplier=0.5, max=5) + wait_random(0, 0.5)  # back within ~5 s of the store's return

# Lower-cased fragments of the messages drivers give (psycopg, sqlite3, MLflow's REST client, urllib3).
FULL = re.compile(r"database or disk is full|no space left on device|disk quota exceeded|could not extend file"
                  r"|file too large")
TRANSIENT = re.compile(
    r"connection refused|could not connect|connection reset|server closed the connection|connection (was|is|already)"
    r" closed|connection is lost|lost connection|server has gone away|eof detected|terminating connection"
    r"|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)"
    r"|no connection to the server|could not (receive|send) data (from|to) server|ssl connection has been closed"
    r"|connection timed out|timeout expired|broken pipe|database is locked|max retries exceeded|connection aborted"
    r"|remote end closed connection|temporary failure in name resolution|error code (429|50[234])|cannot connect to")
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

T = TypeVar("T")
_giving_up = threading.Event()  # set once a fault was raised: later calls try once, never wait


def retry_budget_s() -> float:
    """Seconds a store may stay unreachable before the command gives up (STUDY_STORE_RETRY_SECONDS)."""
    raw = os.environ.get(RETRY_ENV)
    if raw is None or raw == "":
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise InputError(f"{RETRY_ENV}={raw!r}: must be a number of seconds >= 0")
    return value


def give_up() -> None:
    """Stop retrying in this process (a fault was raised here or reported by a worker)."""
    _giving_up.set()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from, as Python's traceback shows them: the cause, else the exception it
    was raised while handling (never past a StoreFault: a fault already decided is not asked again)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 20:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if isinstance(current, StoreFault):
            return


def fault_kind(exc: BaseException) -> str | None:
    """"full" (no space left), "transient" (the store is unreachable for now) or None (anything else)."""
    if isinstance(exc, StoreFault):
        return None  # already decided (a nested guarded call)
    transient = False
    for link in _chain(exc):
        message = str(link).lower()
        if (isinstance(link, OSError) and link.errno in FULL_ERRNOS) or FULL.search(message):
            return "full"
        transient = (transient or isinstance(link, ConnectionError) or TRANSIENT.search(message) is not None
                     or getattr(link, "connection_invalidated", False))  # SQLAlchemy: the connection dropped
    return "transient" if transient else None


class StoreGuard:
    """Retries one store's transient faults within the budget (see module doc); turns faults into StoreFault.

    It also remembers the store's last outage as this process saw it: announced on stdout when the
    first call fails and when a call that failed goes through (the store is back), and asked by
    `recently_down` (stale heartbeats after an outage are not dead workers).
    """

    def __init__(self, what: str, url: str, budget_s: float | None = None) -> None:
        self.what, self.url = what, redact_url(url)
        self.budget_s = retry_budget_s() if budget_s is None else budget_s
        self._lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time of the first failed call of this outage
        self._back_at = float("-inf")  # monotonic time the last outage ended

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        started = time.monotonic()
        try:
            try:
                return fn(*args, **kwargs)  # the usual case builds no retry machinery (30x the cost of a call)
            except Exception as exc:
                if not self._transient(exc):
                    raise
            result = Retrying(retry=retry_if_exception(self._transient), wait=WAIT, reraise=True,
                              stop=stop_after_delay(self.budget_s) | stop_when_event_set(_giving_up))(fn, *args, **kwargs)
        except StoreFault:
            raise
        except Exception as exc:
            kind = fault_kind(exc)
            if kind is None:
                raise
            give_up()
            raise self._fault(kind, exc, time.monotonic() - started) from exc
        self._up()
        return result

    def wrap(self, fn: Callable[..., T]) -> Callable[..., T]:
        def guarded(*args: Any, **kwargs: Any) -> T:
            return self.call(fn, *args, **kwargs)

        guarded.__name__ = getattr(fn, "__name__", "guarded")
        guarded.__doc__ = getattr(fn, "__doc__", None)
        return guarded

    def recently_down(self, seconds: float) -> bool:
        """Whether the store is down now or came back less than `seconds` ago (its heartbeats may still be old)."""
        with self._lock:
            return self._down_since is not None or time.monotonic() - self._back_at < seconds

    # ------------------------------------------------------------------ internals

    def _transient(self, exc: BaseException) -> bool:
        if fault_kind(exc) != "transient":
            return False
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first and self.budget_s > 0 and not _giving_up.is_set():  # one line per outage, then quiet
            LOG.warning("%s %s is unreachable (%s); retrying for up to %.0f s", self.what, self.url, _detail(exc),
                        self.budget_s)  # progress, on stdout: stderr is for what ends the command
        return True

    def _up(self) -> None:
        """A call that had failed went through: the outage is over."""
        with self._lock:
            since, self._down_since = self._down_since, None
            if since is not None:
                self._back_at = time.monotonic()
        if since is not None:
            LOG.info("%s %s is reachable again after %.0f s", self.what, self.url, self._back_at - since)

    def _fault(self, kind: str, exc: BaseException, seconds: float) -> StoreFault:
        if kind == "full":
            return StoreFull(self.what, self.url, f"no space left on its disk ({_detail(exc)})")
        return StoreUnavailable(self.what, self.url, f"unreachable for {seconds:.0f} s ({_detail(exc)})")


def _detail(exc: BaseException | None) -> str:
    """The innermost driver message of `exc`, one line, without passwords."""
    if exc is None:
        return "no detail"
    root = exc
    for link in _chain(exc):  # the innermost message that says what happened (the driver's own)
        if FULL.search(str(link).lower()) or TRANSIENT.search(str(link).lower()) or isinstance(link, OSError):
            root = link
    return redact(f"{type(root).__name__}: {first_line(root)}")[:300]
