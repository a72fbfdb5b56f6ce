"""One lock per database for creating a store's schema: many processes may start at the same moment.

MLflow's SQL store and Optuna's RDBStorage both create (and MLflow migrates) their schema the
first time a process opens a fresh database, and neither serialises that between processes:
two `study run`/`worker`/`tune` commands started together on fresh stores collided (MLflow's
alembic migration failed with "Online migration expected to match one row"; Optuna's
`create_all` raced on "table already exists"). Whoever holds this lock creates or migrates;
the others wait, then find the schema current and do nothing.

- SQLite: a `filelock.FileLock` (an exclusive `flock`) on `<database file>.lock` beside the database;
- PostgreSQL: a session advisory lock (`pg_advisory_lock`) on a connection of its own;
- anything else (a tracking server, MySQL, in-memory SQLite): no lock (a server migrates its
  own store; we know no cross-process lock for the rest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from study.core.errors import StorageError
from study.core.text import redact, redact_url

WAIT_S = 600  # a migration of a large store can take minutes; longer than this means a stuck holder
SQLITE_PREFIX = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL (None for in-memory and non-SQLite URLs)."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url.removeprefix(SQLITE_PREFIX).split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


# Advisory locks are scoped to the database they are taken in: one key serves every database.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"hparam-study schema").digest()[:8], "big", signed=True)


_held: set[str] = set()  # databases whose lock this process holds: taking it again inside is a no-op


@contextmanager
def schema_lock(url: str, what: str) -> Iterator[None]:
    """Hold the database's schema lock (see module doc); `what` names the store in errors.

    Reentrant within a process (a tuning study is created, and its first points enqueued,
    under the lock that also covers opening its storage)."""
    path = sqlite_file(url)
    key = str(path.resolve()) if path is not None else url
    if key in _held:
        yield
        return
    if path is not None:
        lock = _file_lock(path, what, url)
    elif url.startswith(("postgresql", "postgres")):
        lock = _advisory_lock(url, what)
    else:
        yield
        return
    with lock:
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)


@contextmanager
def study_lock(url: str, study: str, what: str) -> Iterator[None]:
    """One process at a time for one study's queue-wide decisions (an adaptive study's next round: exactly one
    worker decides it, the others then find it made). SQLite: `<database>.<study>.lock`; PostgreSQL: an
    advisory lock keyed by the study's name; anything else: no lock (the decision is a pure function of the
    results and enqueueing is idempotent by key, so two deciders would still queue the same trials once)."""
    path = sqlite_file(url)
    if path is not None:
        with _file_lock(path, what, url, suffix=f".{study}.lock", doing="while deciding the next round"):
            yield
    elif url.startswith(("postgresql", "postgres")):
        key = int.from_bytes(hashlib.sha256(f"hparam-study study {study}".encode()).digest()[:8], "big", signed=True)
        with _advisory_lock(url, what, key):
            yield
    else:
        yield


@contextmanager
def _file_lock(db: Path, what: str, url: str, suffix: str = ".lock",
               doing: str = "while creating the schema") -> Iterator[None]:
    lock = db.with_name(db.name + suffix)
    if not lock.parent.is_dir():  # filelock would create the directory; a store in a missing one cannot open
        raise StorageError(f"{what} {redact_url(url)}: cannot open: {lock}: No such file or directory")
    file_lock = filelock.FileLock(lock, timeout=WAIT_S)
    try:
        file_lock.acquire()
    except filelock.Timeout:
        raise StorageError(f"{what} {redact_url(url)}: another process has held {lock} for over "
                           f"{WAIT_S} s {doing}") from None
    except OSError as exc:
        raise StorageError(f"{what} {redact_url(url)}: cannot open: {lock}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        file_lock.release()


@contextmanager
def _advisory_lock(url: str, what: str, key: int = LOCK_KEY) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        connection = engine.connect()
    except Exception as exc:  # noqa: BLE001 - a driver's many error kinds all mean "cannot open"
        raise StorageError(f"{what} {redact_url(url)}: cannot open: {type(exc).__name__}: "
                           f"{redact(str(exc).strip().splitlines()[0] if str(exc).strip() else '')}") from exc
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
    finally:
        connection.close()
        engine.dispose()
