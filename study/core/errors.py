"""Errors that mean "bad input" (exit 2), "a store failed" (exit 1) or "stop" (exit 130), shared by every layer."""

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


class StoreFault(Exception):
    """A store (queue or tracking) failed while the study ran: one line naming it and how to resume, exit 1.

    Nothing recorded is lost: a trial counts as done only once both stores hold its result, so
    running the same command again finishes the study. `what` names the store ("queue",
    "MLflow store"), `url` is shown without its password.
    """

    advice = "run the same command to resume"

    def __init__(self, what: str, url: str, detail: str) -> None:
        self.what, self.url, self.detail = what, url, detail
        super().__init__(f"{what} {url}: {detail}")

    def __reduce__(self):  # noqa: ANN204 - pickled across processes (Ray) with its fields, not str(self)
        return type(self), (self.what, self.url, self.detail)


class StoreUnavailable(StoreFault):
    """The store stayed unreachable (connection refused or lost, server restarting) past the retry budget."""

    advice = "once it is reachable again, run the same command to resume"


class StoreFull(StoreFault):
    """The disk under the store is full: not retried, every later write would fail too."""

    advice = "free space, then run the same command"
