"""Where the study's own lines go: loggers under `study`, given a handler by the command line.

Progress lines ("[3/16] ... | ETA"), what a check found, warnings: each module logs them
with `logging.getLogger(__name__)`, so a program that imports the package decides where they
go, as with any library (unconfigured, Python shows warnings only). `python -m study`
sends them to stdout a record at a time (workers share one terminal or log file), a
warning or error prefixed with its level. The libraries' own loggers stay as
study.core.quiet leaves them: quiet unless --verbose.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

ROOT = "study"


class StdoutHandler(logging.StreamHandler):
    """sys.stdout as it is at each record (a redirect, a test's capture), not as it was at set-up."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class LineBuffer(logging.Handler):
    """Keeps the formatted lines until someone takes them: a Ray actor's lines, relayed by the driver."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock:
            self._lines.append(self.format(record))

    def take(self) -> list[str]:
        with self.lock:
            out, self._lines = self._lines, []
        return out


class PlainFormatter(logging.Formatter):
    """The message as it is; a warning or an error says so first ("warning: ...")."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def send_lines_to(*handlers: logging.Handler) -> None:
    """Make `handlers` (stdout if none) the only ones of the `study` loggers, at INFO: idempotent, so a
    process that runs the command line twice (tests, a notebook) prints each line once. The records
    still propagate: a host program's own handlers on the root logger (pytest's caplog) see them too."""
    logger = logging.getLogger(ROOT)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    for handler in handlers or (StdoutHandler(),):
        handler.setFormatter(PlainFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
