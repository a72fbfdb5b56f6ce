"""The queue contract (study.queue.protocol.Queue), run on every backend: in memory on a manual clock,
and the RDB backend on a SQLite file and a PostgreSQL server. No training, and no sleeping.

Time is moved, not waited for: the in-memory queue's clock is advanced; the RDB queue's heartbeats
are moved into the past in its own table (Optuna compares them with the database's clock), which to
its stale check is the same as that much time passing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy

from study.core.names import CONFIG_ATTR, DUPLICATE_ATTR, KEY_ATTR, RETRAINS_ATTR, STATUS_ATTR
from study.queue.clock import ManualClock
from study.queue.memory import MemoryQueue
from study.queue.progress import collect, key_states
from study.queue.records import COMPLETED, FAILED, RUNNING, WAITING, QueueItem, QueueSettings, WorkerRecord
from study.queue.trial_queue import TrialQueue

FAST = QueueSettings(heartbeat_interval_s=1, grace_period_s=2, max_retry=3)
PAST_GRACE = FAST.grace_period_s + 1


def items(n: int) -> list[QueueItem]:
    return [QueueItem(key=f"k{i:03d}", config={"i": i}, levels={"f": str(i)}) for i in range(n)]


def age_heartbeats(queue: TrialQueue, seconds: float) -> None:
    """Move every heartbeat of the RDB queue `seconds` into the past."""
    engine = queue.storage.engine
    table = sqlalchemy.Table("trial_heartbeats", sqlalchemy.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        rows = connection.execute(sqlalchemy.select(table.c.trial_heartbeat_id, table.c.heartbeat)).all()
        for row_id, beat in rows:
            connection.execute(table.update().where(table.c.trial_heartbeat_id == row_id)
                               .values(heartbeat=beat - timedelta(seconds=seconds)))


class Backend:
    """Opens queues of one study on one backend (each `open` is another worker's handle) and moves time."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind, self.url = kind, url
        self.clock = ManualClock()
        self.memory: dict[str, MemoryQueue] = {}
        self.opened: list[TrialQueue] = []

    def open(self, name: str = "q", settings: QueueSettings = FAST):
        if self.kind == "memory":  # one process: every worker shares the one queue
            return self.memory.setdefault(name, MemoryQueue(name, settings, self.clock))
        queue = TrialQueue.open(self.url, name, settings)
        self.opened.append(queue)
        return queue

    def pass_time(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.advance(seconds)
        else:
            age_heartbeats(self.opened[0], seconds)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request, tmp_path) -> Backend:
    if request.param == "memory":
        return Backend("memory", None)
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'optuna.db'}")
    return Backend("postgres", request.getfixturevalue("postgres_db")("optuna"))


def test_enqueue_is_idempotent_and_requeues_failed_keys(backend):
    queue = backend.open()
    assert queue.enqueue(items(3)) == 3
    assert queue.enqueue(items(3)) == 0
    lease = queue.lease()
    assert queue.fail(lease, {STATUS_ATTR: "failed"})
    assert queue.enqueue(items(3)) == 1, "a failed key is queued again by the next run"
    assert queue.enqueue(items(3), again={"k001"}) == 1, "a key lost elsewhere can be forced back in"
    assert queue.live_keys() == {"k000", "k001", "k002"} and queue.has_work()


def test_a_key_queued_again_replaces_its_completed_attempt_until_it_completes_itself(backend):
    """`again` (MLflow lost the key's run): the copy is trained, not dropped as a duplicate of the
    completed attempt it replaces, and the key is not done until the copy completes, even after a failure."""
    queue = backend.open()
    queue.enqueue(items(1))
    original = queue.lease()
    assert queue.complete(original, 1.0, {})
    assert queue.enqueue(items(1), again={original.key}) == 1
    assert key_states(queue.trials(), [original.key]) == {original.key: "waiting"}
    copy = queue.lease()
    assert copy is not None and copy.user_attrs[RETRAINS_ATTR] == original.number, "not dropped as a duplicate"
    assert queue.fail(copy, {STATUS_ATTR: "failed"})
    assert key_states(queue.trials(), [original.key]) == {original.key: "failed"}
    assert queue.enqueue(items(1)) == 1, "a failed copy is queued again by the next run, without being forced"
    retry = queue.lease()
    assert retry is not None, "the replaced attempt still does not count"
    assert queue.complete(retry, 1.0, {})
    assert key_states(queue.trials(), [original.key]) == {original.key: "completed"}
    assert queue.enqueue(items(1)) == 0


def test_interrupted_trial_is_requeued_with_its_identity(backend):
    queue = backend.open()
    queue.enqueue(items(2))
    lease = queue.lease()
    queue.set_attrs(lease, {"worker": "w1", "mlflow_run_id": "abc"})
    assert queue.fail(lease, {STATUS_ATTR: "interrupted"}, requeue=True)
    copy = next(t for t in queue.trials((WAITING,)) if t.key == lease.key)
    assert copy.config == {"i": 0} and copy.levels == {"f": "0"}
    assert "worker" not in copy.user_attrs and "mlflow_run_id" not in copy.user_attrs
    assert copy.requeued_from == lease.number and copy.repeats == {lease.number}
    assert key_states(queue.trials(), [lease.key]) == {lease.key: "waiting"}


def test_a_finished_trial_is_told_once(backend):
    queue = backend.open()
    queue.enqueue(items(1))
    lease = queue.lease()
    assert queue.complete(lease, 0.5, {STATUS_ATTR: "completed"})
    assert not queue.holds(lease)
    assert not queue.fail(lease, {STATUS_ATTR: "failed"}), "told already: the second tell is refused"
    assert queue.trial(lease.number).state == COMPLETED and queue.trial(lease.number).value == 0.5
    with pytest.raises(RuntimeError):
        queue.set_attrs(lease, {"late": 1})
    assert queue.lease() is None and not queue.has_work()


def test_duplicates_enqueued_at_once_are_dropped_when_taken(backend):
    """Optuna documents that enqueue_trial duplicates when processes enqueue at once; add the twins directly."""
    queue = backend.open()
    queue.enqueue(items(6))
    for item in items(6)[::2]:  # a second process enqueued every other key again
        queue.add({KEY_ATTR: item.key, CONFIG_ATTR: item.config})
    taken = []
    while (lease := queue.lease()) is not None:
        taken.append(lease.key)
        assert queue.complete(lease, 0.5, {})
    assert sorted(taken) == [i.key for i in items(6)], "each key trained exactly once"
    dropped = queue.trials((FAILED,))
    assert len(dropped) == 3 and all(t.status == "duplicate" and DUPLICATE_ATTR in t.user_attrs for t in dropped)


def test_a_duplicate_found_after_its_twin_finished_is_dropped_not_run(backend):
    """The interleaving CI once hit: worker A takes k000 before a racing enqueuer adds its twin, and
    completes it; worker B then sees only the twin waiting, takes it, and must yield to the finished one."""
    first = backend.open()
    first.enqueue(items(1))
    original = first.lease()  # no twin yet: nothing to check against
    first.add({KEY_ATTR: original.key, CONFIG_ATTR: original.user_attrs[CONFIG_ATTR]})
    assert first.complete(original, 1.0, {})
    second = backend.open()
    assert second.lease() is None, "the key is trained: its twin must not run"
    twin = next(t for t in second.trials() if t.number != original.number)
    assert twin.state == FAILED and twin.user_attrs[DUPLICATE_ATTR] == original.number


def test_stale_trial_of_a_silent_worker_goes_back_and_its_lease_is_lost(backend):
    queue = backend.open()
    queue.enqueue(items(1))
    dead = queue.lease()  # taken, then its worker never beats again
    other = backend.open()
    assert other.lease() is None
    other.fail_stale()
    assert other.lease() is None, "within the grace period the trial is still its worker's"
    backend.pass_time(PAST_GRACE)
    other.fail_stale()
    retry = other.lease()
    assert retry is not None and retry.key == dead.key and retry.number != dead.number
    assert other.trial(retry.number).retry_of == dead.number
    assert not queue.holds(dead)
    assert not queue.complete(dead, 1.0, {}), "a worker that lost its trial cannot complete it"
    assert other.complete(retry, 1.0, {})
    status = collect(other, [dead.key])
    assert status.complete and status.attempts == {"lost": 1}


def test_a_beating_worker_keeps_its_trial_past_the_grace_period(backend):
    queue = backend.open()
    queue.enqueue(items(1))
    lease = queue.lease()
    for _ in range(3):  # 4.5 s in all, more than twice the grace period, but never 2 s without a beat
        backend.pass_time(1.5)
        queue.heartbeat(lease)
        queue.fail_stale()
    assert queue.holds(lease) and queue.complete(lease, 1.0, {})


def test_a_trial_that_keeps_killing_its_worker_comes_back_at_most_max_retry_times(backend):
    queue = backend.open()
    queue.enqueue(items(1))
    attempts = []
    while (lease := queue.lease()) is not None:
        attempts.append(lease.number)
        backend.pass_time(PAST_GRACE)  # its worker dies
        queue.fail_stale()
    assert len(attempts) == 1 + FAST.max_retry
    last = queue.trial(attempts[-1])
    assert last.retry_of == attempts[0] and last.repeats == set(attempts[:-1])
    assert key_states(queue.trials(), ["k000"]) == {"k000": "lost"}
    assert queue.enqueue(items(1)) == 1, "running the study again queues it again"


def test_a_group_is_leased_together_and_comes_back_whole_when_its_worker_dies(backend):
    """An executor that trains several trials at once gets them as one lease; if its worker dies,
    every trial of the group goes stale and can be taken again, as a group."""
    queue = backend.open("g")
    queue.enqueue([QueueItem(key=f"k{i}", config={"i": i}, group="even" if i % 2 == 0 else "odd")
                   for i in range(6)] + [QueueItem(key="alone", config={})])
    group = queue.lease_group(10)
    assert [lease.key for lease in group] == ["k0", "k2", "k4"] and {lease.group for lease in group} == {"even"}
    other = backend.open("g")
    odd = other.lease_group(2)
    assert [lease.key for lease in odd] == ["k1", "k3"], "a group is capped at the asked size"
    for lease in odd:
        assert other.complete(lease, 0.5, {STATUS_ATTR: "completed"})
    assert [lease.key for lease in other.lease_group(5)] == ["k5"]
    alone = other.lease_group(5)
    assert [lease.key for lease in alone] == ["alone"], "a trial without a group is taken alone"
    backend.pass_time(PAST_GRACE)  # the first worker "dies": its group's beats stop; the other one beats
    other.heartbeat(alone[0])
    other.fail_stale()
    again = other.lease_group(10)
    assert sorted(lease.key for lease in again) == ["k0", "k2", "k4"], "the whole group came back"
    assert all(not queue.holds(lease) for lease in group), "the dead worker's leases are lost"
    assert other.holds(alone[0])


def test_a_worker_takes_a_group_of_a_program_it_compiled_before_an_older_one(backend):
    """Groups "<program>|seed=<s>": preferring known programs takes the oldest such group, else the oldest."""
    from study.training.executors.registry import program_of

    queue = backend.open("p")
    groups = ["A|seed=0", "B|seed=0", "A|seed=1", "B|seed=1"]
    queue.enqueue([QueueItem(key=f"k{i}", config={"i": i}, group=g) for i, g in enumerate(groups)])
    assert program_of("A|seed=1") == "A" and program_of("alone") == "alone" and program_of(None) is None
    knows_b = [lease.key for lease in queue.lease_group(10, prefer=lambda g: program_of(g) == "B")]
    assert knows_b == ["k1"], "B's oldest group before the older A group"
    assert [lease.key for lease in queue.lease_group(10, prefer=lambda g: program_of(g) == "B")] == ["k3"]
    assert [lease.key for lease in queue.lease_group(10, prefer=lambda g: program_of(g) == "B")] == ["k0"], \
        "no B left: the oldest group"


def test_status_counts_workers_and_eta(backend):
    queue = backend.open()
    queue.enqueue(items(4))
    for _ in range(2):
        queue.complete(queue.lease(), 0.5, {STATUS_ATTR: "completed"})
    queue.lease()
    now = time.time()
    queue.record_worker(WorkerRecord("h:1", "h", 1, "training", now, trial=2))
    queue.record_worker(WorkerRecord("h:2", "h", 2, "stopped", now - 100))
    status = collect(queue, [i.key for i in items(4)], now=now)
    assert (status.done, status.keys["running"], status.keys["waiting"]) == (2, 1, 1)
    assert [w.worker for w in status.alive] == ["h:1"] and [w.worker for w in status.gone] == ["h:2"]
    assert status.eta_s is not None and status.eta_s >= 0
    assert status.study == "q" and [t.state for t in queue.trials((RUNNING,))] == [RUNNING]


# --------------------------------------------------------------------------- the in-memory backend only

def test_threads_racing_for_an_in_memory_queue_take_each_trial_once():
    queue = MemoryQueue("q", FAST, ManualClock())
    queue.enqueue(items(200))
    taken: list[str] = []

    def work() -> None:
        while (lease := queue.lease()) is not None:
            taken.append(lease.key)
            assert queue.complete(lease, 1.0, {})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(taken) == Counter(i.key for i in items(200))


def test_a_manual_clock_moves_only_forward_and_only_when_told():
    clock = ManualClock(100.0)
    clock.sleep(5)
    clock.advance(1.5)
    assert clock.now() == 106.5
    with pytest.raises(ValueError):
        clock.advance(-1)
