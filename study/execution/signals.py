"""Stopping cleanly: SIGINT/SIGTERM as a request the worker honours at the next batch."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from study.core.errors import Interrupted

LOG = logging.getLogger(__name__)


class StopFlag:
    """SIGINT/SIGTERM as a request: the first sets the flag, a second one raises at once."""

    def __init__(self, prefix: str = "") -> None:
        self.event = threading.Event()
        self.prefix = prefix  # the worker's label ("[w1] "), where several share a terminal
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
        LOG.info(f"{self.prefix}{signal.Signals(signum).name}: stopping; the trials in progress are recorded as interrupted "
                 "and re-queued (signal again to stop at once)")


def raise_interrupted(signum: int, frame: Any) -> None:
    """A signal handler that turns SIGTERM into Ctrl-C's clean path."""
    raise Interrupted()
