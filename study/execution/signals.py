"""Stopping cleanly: SIGINT/SIGTERM as a request the worker honours at the next batch."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from study.core.errors import Interrupted


def say(line: str) -> None:
    """Print a progress line at once: workers share one terminal or log file with others."""
    print(line, flush=True)


class StopFlag:
    """SIGINT/SIGTERM as a request: the first sets the flag, a second one raises at once."""

    def __init__(self, log: Callable[[str], None] = say) -> None:
        self.event = threading.Event()
        self.log = log
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            raise Interrupted()
        self.event.set()
        self.log(f"{signal.Signals(signum).name}: stopping; the trials in progress are recorded as interrupted "
                 "and re-queued (signal again to stop at once)")


def raise_interrupted(signum: int, frame: Any) -> None:
    """A signal handler that turns SIGTERM into Ctrl-C's clean path."""
    raise Interrupted()
