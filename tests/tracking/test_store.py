"""A SQLite tracking store lets readers in while a writer is in the middle of a commit."""

from __future__ import annotations

import sqlite3
import time

import mlflow

from study.tracking.store import configure


def test_a_reader_is_not_locked_out_by_a_writer_holding_the_sqlite_store(tmp_path):
    # `status`, the UI and the report read while workers write; a worker stopped mid-commit
    # (SIGSTOP, a debugger) once held MLflow's reads for 20 s and then failed them.
    db = tmp_path / "mlflow.db"
    uri = configure(f"sqlite:///{db}")
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("wal")).info.run_id
    client.log_metric(run_id, "loss", 1.0, step=0)

    writer = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")  # what a writer holds while it commits
        writer.execute("UPDATE runs SET status = 'FAILED' WHERE run_uuid = ?", (run_id,))
        started = time.monotonic()
        history = client.get_metric_history(run_id, "loss")
        status = client.get_run(run_id).info.status
        waited = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [m.value for m in history] == [1.0] and status == "RUNNING", "the last committed state is read"
    assert waited < 5, f"the read waited {waited:.1f} s for the writer"
