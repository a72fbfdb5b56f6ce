"""Which MLflow store a study records to, and its experiment (created once, opened on its runs)."""

from __future__ import annotations

import inspect
import logging
import os
import sqlite3
from pathlib import Path

import mlflow

from study.core.errors import StorageError
from study.core.store_faults import StoreGuard
from study.core.store_lock import schema_lock, sqlite_file
from study.core.text import first_line, redact, redact_url

TRACKING_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_STORE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
# MLflow 3.x opens an experiment on its GenAI overview unless this tag says it holds training runs.
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# MLflow's REST client retries a tracking server for ~4 minutes by default before it raises; a few
# tries (~15 s) leave the wait to the StoreGuard, so `--store-retry-seconds` bounds it (unless set).
HTTP_RETRIES_ENV, HTTP_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3"


def default_tracking_uri(project_dir: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else a SQLite file in the project directory."""
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    return f"sqlite:///{(project_dir or Path.cwd()).resolve() / DEFAULT_STORE}"


def configure(tracking_uri: str | None) -> str:
    """Make `tracking_uri` (or the default) MLflow's store for this process, opening it the first time.

    The one place the tracking URI is set. A process opens its store once (a worker's bootstrap,
    study.execution.bootstrap, or a command that only reads); a later call for the same store
    returns at once. A fresh database store gets its tables and migrations here, under the schema
    lock (study.core.store_lock), so commands started at the same moment never migrate it twice;
    a SQLite store is put in WAL mode (see `_use_wal`); a store that cannot be opened is a
    StorageError (exit 2) that names it without its password.
    """
    uri = tracking_uri or default_tracking_uri()
    if _OPENED == [uri] and mlflow.get_tracking_uri() == uri:
        return uri
    _open_store(uri)
    _OPENED[:] = [uri]
    return uri


_OPENED: list[str] = []  # the store this process has opened (what configure remembers)


def current_uri() -> str:
    """The tracking URI this process's MLflow calls go to."""
    return mlflow.get_tracking_uri()


def _open_store(uri: str) -> None:
    """Point MLflow at `uri` and open its store: schema, WAL mode, the fault guard."""
    # With a tracking server MLflow prints a URL per ended run; our progress lines say enough.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault(HTTP_RETRIES_ENV, HTTP_RETRIES)
    mlflow.set_tracking_uri(uri)
    try:
        with schema_lock(uri, "MLflow tracking URI"):
            mlflow.MlflowClient(uri)  # builds (and caches) the store: creates or migrates its schema
            _use_wal(uri)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow and the drivers raise many kinds; all mean "cannot open"
        raise StorageError(f"MLflow tracking URI {redact_url(uri)}: cannot open: {type(exc).__name__}: "
                           f"{redact(first_line(exc))}") from exc
    _guard_store(uri)


def _guard_store(uri: str) -> StoreGuard:
    """Send every call of MLflow's store for `uri` through a StoreGuard (study.core.store_faults).

    MLflow caches one store object per URI and every client, fluent call and reader of this
    process uses it, so its methods are the one place where each call is one transaction (a
    database store) or one request (a tracking server). MLflow logs each database error with
    its traceback before it raises; the guard decides what the user sees, so those lines go.
    """
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(uri)
    guard = store.__dict__.get("_study_guard")
    if guard is None:
        guard = StoreGuard("MLflow store", uri)
        for name, method in inspect.getmembers(type(store), inspect.isfunction):
            if not name.startswith("_"):
                setattr(store, name, guard.wrap(getattr(store, name)))
        store._study_guard = guard
        logging.getLogger("mlflow.store.db.utils").addFilter(_no_database_error_traceback)
    return guard


def tracking_guard() -> StoreGuard:
    """The StoreGuard of the configured MLflow store (artifact writes go through it too)."""
    return _guard_store(mlflow.get_tracking_uri())


def _no_database_error_traceback(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("SQLAlchemy database error")


def _use_wal(uri: str) -> None:
    """Put a SQLite tracking store in WAL mode (it stays so: the mode is kept in the file).

    In SQLite's default rollback journal a writer that commits locks readers out, and MLflow
    waits 20 s for a lock before it fails: `status`, the MLflow UI or the report reading while
    workers log their epochs could fail with "database is locked" (a worker stopped in the middle
    of a commit, by a debugger or a frozen machine, made it certain). In WAL mode readers never
    wait for writers; writers still take turns, as before.
    """
    path = sqlite_file(uri)
    if path is None:
        return
    try:
        connection = sqlite3.connect(path, timeout=20)  # as long as MLflow itself waits for a lock
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
    except sqlite3.Error:
        return  # a read-only copy of a store, say: it still works, in the default journal mode


def shown(uri: str) -> str:
    """A tracking URI as we print it: without a password."""
    return redact_url(uri)


def artifact_location_for(tracking_uri: str) -> str | None:
    """Local stores keep artifacts in ./mlartifacts; a tracking server decides itself."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return (Path.cwd() / DEFAULT_ARTIFACTS).resolve().as_uri()


def experiment_id(study_name: str, tracking_uri: str, create: bool = True) -> str | None:
    """The study's experiment (created if missing), made the active one for fluent runs."""
    experiment = mlflow.get_experiment_by_name(study_name)
    if experiment is None:
        if not create:
            return None
        try:
            exp_id = mlflow.create_experiment(study_name, artifact_location=artifact_location_for(tracking_uri),
                                              tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})
        except mlflow.exceptions.MlflowException:
            # Another worker created it between our lookup and create.
            experiment = mlflow.get_experiment_by_name(study_name)
            if experiment is None:
                raise
            exp_id = experiment.experiment_id
    else:
        exp_id = experiment.experiment_id
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
            mlflow.MlflowClient().set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    mlflow.set_experiment(experiment_id=exp_id)  # parent runs (fluent) land here
    return exp_id
