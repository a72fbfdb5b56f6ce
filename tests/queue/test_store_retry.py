"""Which store errors are waited out, which stop the study at once, and which are the store's own answer
(study.core.store_faults), on errors the real drivers raise; and a queue call across a real PostgreSQL restart."""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
import threading
import time

import pytest
import sqlalchemy

from study.core import store_faults
from study.core.errors import StoreFull, StoreUnavailable
from study.core.store_faults import StoreGuard, fault_kind
from study.queue.records import Lease
from study.queue.trial_queue import QueueItem, TrialQueue


@pytest.fixture(autouse=True)
def retrying_again(monkeypatch):
    """A fault raised here stops retrying in this process: not in the next test's."""
    monkeypatch.setattr(store_faults, "_giving_up", threading.Event())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raised(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test looks at whatever the driver raised
        return exc
    raise AssertionError("nothing was raised")


def test_a_refused_connection_and_a_locked_sqlite_database_are_transient(tmp_path):
    engine = sqlalchemy.create_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere")
    assert fault_kind(raised(engine.connect)) == "transient"

    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    assert fault_kind(raised(lambda: other.execute("BEGIN IMMEDIATE"))) == "transient"
    holder.execute("ROLLBACK")


def test_a_full_disk_is_not_transient_and_the_stores_own_answers_pass_through(tmp_path):
    assert fault_kind(OSError(errno.ENOSPC, "No space left on device")) == "full"
    try:
        raise RuntimeError("commit failed") from sqlite3.OperationalError("database or disk is full")
    except RuntimeError as exc:
        assert fault_kind(exc) == "full"  # found where the driver's error sits in the chain
    connection = sqlite3.connect(tmp_path / "x.db")
    assert fault_kind(raised(lambda: connection.execute("SELECT * FROM missing"))) is None
    connection.execute("CREATE TABLE t (x UNIQUE)")
    connection.execute("INSERT INTO t VALUES (1)")
    assert fault_kind(raised(lambda: connection.execute("INSERT INTO t VALUES (1)"))) is None
    assert fault_kind(KeyError("Record does not exist.")) is None


def test_a_guarded_call_raises_a_full_disk_at_once_and_lets_other_errors_through():
    guard = StoreGuard("queue", "postgresql://user:pw@db/optuna", budget_s=60)
    started = time.monotonic()

    def full():
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(StoreFull, match=r"^queue postgresql://user:\*\*\*@db/optuna: no space left on its disk"):
        guard.call(full)
    assert time.monotonic() - started < 1
    with pytest.raises(KeyError):
        guard.call(lambda: {}["missing"])


def test_a_queue_call_waits_out_a_postgresql_restart_then_gives_up_past_the_budget(own_postgres, caplog):
    from tests.postgres import create_database

    url = create_database(own_postgres.url, "optuna")
    queue = TrialQueue.open(url, "restart")
    queue.enqueue([QueueItem("k1", {"seed": 1})])
    caplog.set_level(logging.INFO, logger="study")
    own_postgres.halt()
    threading.Timer(3, own_postgres.start).start()
    started = time.monotonic()
    assert [t.user_attrs["trial_key"] for t in queue.trials()] == ["k1"]
    assert time.monotonic() - started >= 3
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "study.core.store_faults"]
    assert said[0][0] == "WARNING" and said[0][1].startswith("queue postgresql://postgres@"), said
    assert "is unreachable" in said[0][1] and "reachable again" in said[-1][1], said
    assert queue.storage.guard.recently_down(queue.settings.grace_period_s), "fail_stale waits for the beats"

    queue.storage.guard.budget_s = 2
    own_postgres.halt()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"^queue postgresql://postgres@127\.0\.0\.1:\d+/optuna_\w+: "
                                               r"unreachable for \d+ s \("):
        queue.heartbeat(Lease(1, 0, {}))
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):  # the process gave up: the next call tries once
        queue.trials()
    assert time.monotonic() - started < 1
