"""The RDB queue on real Optuna storages (SQLite file, PostgreSQL server): what only it does. No training.

Several processes hammer one queue at once; every trial must be taken exactly once and
duplicates enqueued by racing processes must be dropped; a tuning study's `ask` shares the
queue. The rules every backend follows (stale, interrupted, duplicate trials, groups,
retrains) are in test_contract.py, run on this backend and the in-memory one.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest

from study.core.names import CONFIG_ATTR, DUPLICATE_ATTR, GROUP_ATTR, KEY_ATTR, STATUS_ATTR, WORKER_ATTR
from study.queue.progress import seconds_per_trial
from study.queue.records import COMPLETED, FAILED, QueuedTrial
from study.queue.storage import QueueSettings, default_storage_url
from study.queue.trial_queue import QueueItem, TrialQueue
from tests.queue.test_contract import age_heartbeats

FAST = QueueSettings(heartbeat_interval_s=1, grace_period_s=2, max_retry=3)


def items(n: int) -> list[QueueItem]:
    return [QueueItem(key=f"k{i:03d}", config={"i": i}, levels={"f": str(i)}) for i in range(n)]


def lease_all(url: str, worker: int) -> list[str]:
    """A worker that takes trials as fast as it can and completes each at once (runs in a subprocess)."""
    queue = TrialQueue.open(url, "q", FAST)
    taken = []
    while (lease := queue.lease()) is not None:
        taken.append(lease.key)
        assert queue.complete(lease, float(worker), {"worker": str(worker)})
    return taken


def race(url: str, workers: int = 4) -> list[str]:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return [key for taken in pool.starmap(lease_all, [(url, w) for w in range(workers)]) for key in taken]


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("postgres_db")("optuna")


def test_concurrent_workers_take_each_trial_exactly_once(storage_url):
    queue = TrialQueue.open(storage_url, "q", FAST)
    assert queue.enqueue(items(60)) == 60
    taken = race(storage_url)
    twice = [k for k, n in Counter(taken).items() if n > 1]
    assert not twice, f"taken more than once: {twice}"
    assert sorted(taken) == [f"k{i:03d}" for i in range(60)]
    assert Counter(t.state for t in queue.trials()) == {COMPLETED: 60}


def test_duplicates_from_racing_enqueuers_are_dropped_not_run(storage_url):
    """Optuna documents that enqueue_trial duplicates when processes enqueue at once; simulate that."""
    queue = TrialQueue.open(storage_url, "q", FAST)
    queue.enqueue(items(20))
    for item in items(20)[::2]:  # a second process enqueued every other key again
        queue.study.enqueue_trial({}, user_attrs={KEY_ATTR: item.key, CONFIG_ATTR: item.config})
    taken = race(storage_url)
    assert Counter(taken) == Counter(f"k{i:03d}" for i in range(20)), "each key trained exactly once"
    trials = queue.trials()
    complete = Counter(t.user_attrs[KEY_ATTR] for t in trials if t.state == COMPLETED)
    assert set(complete.values()) == {1} and len(complete) == 20
    dropped = [t for t in trials if t.state == FAILED]
    assert len(dropped) == 10
    assert all(t.user_attrs[STATUS_ATTR] == "duplicate" and DUPLICATE_ATTR in t.user_attrs for t in dropped)


def test_later_workers_adopt_the_settings_the_study_was_created_with(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    TrialQueue.open(url, "q", FAST)
    assert TrialQueue.open(url, "q").settings == FAST, "default settings asked: the study's stored ones win"
    assert TrialQueue.open(url, "absent", create=False) is None


def test_default_storage_sits_beside_a_sqlite_mlflow_store(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert default_storage_url(f"sqlite:///{tmp_path}/mlflow.db") == f"sqlite:///{tmp_path}/optuna.db"
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://h/db")
    assert default_storage_url(f"sqlite:///{tmp_path}/mlflow.db") == "postgresql://h/db"


def test_a_tuning_study_shares_the_queue_retries_first_then_samples(tmp_path):
    """What `study tune` needs from the same workers: ask() pops re-queued trials before sampling,
    and an asked trial whose worker dies goes stale and comes back with its params."""
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", "tune", FAST)
    lease, trial = queue.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    queue.fail(lease, {STATUS_ATTR: "interrupted"}, requeue=True)
    again, retried = queue.ask()
    assert retried.suggest_float("x", 0.0, 1.0) == x, "the re-queued trial keeps its params"
    queue.fail_stale()
    assert queue.holds(again), "within the grace period"
    age_heartbeats(queue, FAST.grace_period_s + 1)  # its worker "dies": no more beats
    queue.fail_stale()
    third, revived = queue.ask()
    assert revived.suggest_float("x", 0.0, 1.0) == x and third.number > again.number
    assert queue.trial(third.number).repeats == {lease.number, again.number}
    assert queue.complete(third, 0.9, {STATUS_ATTR: "completed"})
    assert queue.best().number == third.number and queue.best().params == {"x": x}
    fresh, sampled = queue.ask()
    assert 0.0 <= sampled.suggest_float("x", 0.0, 1.0) <= 1.0
    assert not queue.trial(fresh.number).fixed, "nothing waited: the sampler proposed it"


def test_a_group_trained_together_counts_its_time_once_in_the_eta():
    """12 trials of one group, each spanning the group's 12 s, cost 1 s each; lone trials their own span."""
    import datetime as dt

    start = dt.datetime(2026, 1, 1)

    def done(number: int, offset: float, seconds: float, **attrs) -> QueuedTrial:
        began = start + dt.timedelta(seconds=offset)
        return QueuedTrial(number, COMPLETED, attrs, value=0.5, datetime_start=began,
                           datetime_complete=began + dt.timedelta(seconds=seconds))

    group = [done(i, 0.01 * i, 12.0 - 0.01 * i, **{GROUP_ATTR: "A|seed=0", WORKER_ATTR: "w1"}) for i in range(12)]
    assert abs(seconds_per_trial(group) - 1.0) < 1e-9
    alone = [done(0, 0, 3.0), done(1, 5, 5.0)]
    assert abs(seconds_per_trial(alone) - 4.0) < 1e-9
