"""Errors that mean "bad input" (exit 2) or "stop" (exit 130), shared by every layer."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class InputError(ValueError):
    """Invalid input (spec, data, storage, option): one line for the user, exit 2."""


class SpecError(InputError):
    """An invalid spec; str() is the full user-facing message naming the file and the key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {message}")


class DataError(InputError):
    """A dataset could not be found, parsed or verified."""


class StorageError(InputError):
    """A store (queue or tracking) URL cannot be opened."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or a stop request), delivered like Ctrl-C so both stop a trial the same clean way."""
