"""The queue's storage: an Optuna RDB storage with heartbeats, made safe for many processes.

Why Optuna's storage and not a queue of our own: it already is a transactional store
of trials with states (WAITING -> RUNNING -> COMPLETE/FAIL), heartbeats for workers
that die, and a retry callback that puts their trials back. SQLite serves one machine,
PostgreSQL (or MySQL) many. On SQLite, taking a trial atomically needs every
transaction to start with `BEGIN IMMEDIATE` (pysqlite otherwise reads outside the
write lock, and two workers can both see WAITING); the same setting, with a long busy
timeout, is what removes "database is locked" (optuna#820).

Every call of the storage rides out a database that is briefly unreachable (a restart, a
failover) and stops at once on a full disk (study.core.store_faults): each RDBStorage method
is one transaction, so retrying the call that failed is safe.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from study.core.errors import StorageError
from study.core.store_faults import StoreGuard
from study.core.store_lock import schema_lock
from study.core.text import first_line, redact, redact_url
from study.queue.records import QueueSettings

DEFAULT_STORAGE = "optuna.db"
STORAGE_ENV = "OPTUNA_STORAGE"
SQLITE_BUSY_TIMEOUT_S = 120


def default_storage_url(tracking_uri: str | None = None) -> str:
    """OPTUNA_STORAGE if set, else `optuna.db` beside a SQLite MLflow store, else in the working directory.

    Beside the MLflow store, so that one study's queue and its record travel together
    (and two stores never share one queue by accident).
    """
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    # study.tracking's default, without importing MLflow (status and idle workers start fast)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        return f"sqlite:///{path.resolve().parent / DEFAULT_STORAGE}"
    return f"sqlite:///{Path.cwd().resolve() / DEFAULT_STORAGE}"


def quiet_optuna() -> None:
    """Our progress lines replace Optuna's per-trial logs; its experimental/ask warnings are expected."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used with Study.optimize.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


# The RDBStorage methods that run a transaction of their own (Optuna's cache calls the private ones directly).
GUARDED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
           "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
           "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial",
           "set_trial_param", "_set_trial_param", "get_trial_param", "set_trial_state_values",
           "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
           "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials", "get_best_trial",
           "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids")


class GuardedStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every transaction goes through the queue's StoreGuard."""

    guard: StoreGuard | None = None  # None while RDBStorage.__init__ runs: opening is not retried (exit 2)

    def __init__(self, url: str, guard: StoreGuard, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.guard = guard


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: GuardedStorage, *args: Any, **kwargs: Any) -> Any:
        if self.guard is None:
            return method(self, *args, **kwargs)
        return self.guard.call(method, self, *args, **kwargs)

    return call


for _name in GUARDED:
    setattr(GuardedStorage, _name, _guarded(getattr(optuna.storages.RDBStorage, _name)))


def open_storage(url: str, settings: QueueSettings, readonly: bool = False) -> GuardedStorage:
    """An RDB storage with heartbeats and retry of stale trials; SQLite serialised (see module doc).

    `readonly` (status, monitoring) leaves SQLite reads unserialised: in WAL mode they
    never wait for a writer, not even one that is stopped mid-transaction.
    """
    quiet_optuna()
    sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None}} if sqlite
        else {"pool_pre_ping": True})
    guard = StoreGuard("queue", url)
    try:
        with schema_lock(url, "storage"):  # a fresh database's schema is created by one process at a time
            storage = GuardedStorage(
                url, guard, engine_kwargs=engine_kwargs,
                heartbeat_interval=settings.heartbeat_interval_s, grace_period=settings.grace_period_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=settings.max_retry))
            if sqlite and not readonly:
                _serialize_sqlite(storage)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        raise StorageError(f"storage {redact_url(url)}: cannot open: {type(exc).__name__}: "
                           f"{redact(first_line(exc))}") from exc
    return storage


def _serialize_sqlite(storage: GuardedStorage) -> None:
    """WAL (readers never block the writer) and BEGIN IMMEDIATE (one writer at a time, no lost updates)."""
    from sqlalchemy import event

    raw = storage.engine.raw_connection()
    try:
        raw.cursor().execute("PRAGMA journal_mode=WAL")
    finally:
        raw.close()

    @event.listens_for(storage.engine, "begin")
    def _begin_immediate(connection) -> None:  # noqa: ANN001 - SQLAlchemy Connection
        connection.exec_driver_sql("BEGIN IMMEDIATE")
