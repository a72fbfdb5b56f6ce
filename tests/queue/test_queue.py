"""The trial queue on real Optuna storages (SQLite file, PostgreSQL server): no training here.

Several processes hammer one queue at once; every trial must be taken exactly once,
duplicates enqueued by racing processes must be dropped, stale and interrupted
trials must come back with their identity.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest
from optuna.trial import TrialState

from study.core.names import CONFIG_ATTR, DUPLICATE_ATTR, KEY_ATTR, RETRAINS_ATTR, STATUS_ATTR
from study.queue.progress import collect, key_states
from study.queue.storage import QueueSettings, default_storage_url
from study.queue.trial_queue import QueueItem, TrialQueue, WorkerRecord

FAST = QueueSettings(heartbeat_interval_s=1, grace_period_s=2, max_retry=3)


def items(n: int) -> list[QueueItem]:
    return [QueueItem(key=f"k{i:03d}", config={"i": i}, levels={"f": str(i)}) for i in range(n)]


def claim_all(url: str, worker: int) -> list[str]:
    """A worker that takes trials as fast as it can and completes each at once (runs in a subprocess)."""
    queue = TrialQueue.open(url, "q", FAST)
    taken = []
    while (claim := queue.claim()) is not None:
        taken.append(claim.key)
        assert queue.complete(claim, float(worker), {"worker": str(worker)})
    return taken


def race(url: str, workers: int = 4) -> list[str]:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return [key for taken in pool.starmap(claim_all, [(url, w) for w in range(workers)]) for key in taken]


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
    assert Counter(t.state for t in queue.trials()) == {TrialState.COMPLETE: 60}


def test_duplicates_from_racing_enqueuers_are_dropped_not_run(storage_url):
    """Optuna documents that enqueue_trial duplicates when processes enqueue at once; simulate that."""
    queue = TrialQueue.open(storage_url, "q", FAST)
    queue.enqueue(items(20))
    for item in items(20)[::2]:  # a second process enqueued every other key again
        queue.study.enqueue_trial({}, user_attrs={KEY_ATTR: item.key, CONFIG_ATTR: item.config})
    taken = race(storage_url)
    assert Counter(taken) == Counter(f"k{i:03d}" for i in range(20)), "each key trained exactly once"
    trials = queue.trials()
    complete = Counter(t.user_attrs[KEY_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert set(complete.values()) == {1} and len(complete) == 20
    dropped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(dropped) == 10
    assert all(t.user_attrs[STATUS_ATTR] == "duplicate" and DUPLICATE_ATTR in t.user_attrs for t in dropped)


def test_a_duplicate_found_after_its_twin_finished_is_dropped_not_run(tmp_path):
    """The interleaving CI once hit: worker A takes k000 before a racing enqueuer adds its twin, and
    completes it; worker B then sees only the twin waiting, takes it, and must yield to the finished one."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = TrialQueue.open(url, "q", FAST)
    first.enqueue(items(1))
    original = first.claim()  # no twin yet: nothing to check against
    first.study.enqueue_trial({}, user_attrs={KEY_ATTR: original.key, CONFIG_ATTR: original.user_attrs[CONFIG_ATTR]})
    assert first.complete(original, 1.0, {})
    second = TrialQueue.open(url, "q", FAST)
    assert second.claim() is None, "the key is trained: its twin must not run"
    twin = next(t for t in second.trials() if t.number != original.number)
    assert twin.state == TrialState.FAIL and twin.user_attrs[DUPLICATE_ATTR] == original.number


def test_enqueue_is_idempotent_and_requeues_failed_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = TrialQueue.open(url, "q", FAST)
    assert queue.enqueue(items(3)) == 3
    assert queue.enqueue(items(3)) == 0
    claim = queue.claim()
    queue.fail(claim, {STATUS_ATTR: "failed"})
    assert queue.enqueue(items(3)) == 1, "a failed key is queued again by the next run"
    assert queue.enqueue(items(3), again={"k001"}) == 1, "a key lost elsewhere can be forced back in"


def test_a_key_queued_again_replaces_its_completed_attempt_until_it_completes_itself(tmp_path):
    """`again` (MLflow lost the key's run): the copy is trained, not dropped as a duplicate of the
    completed attempt it replaces, and the key is not done until the copy completes, even after a failure."""
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", "q", FAST)
    queue.enqueue(items(1))
    original = queue.claim()
    assert queue.complete(original, 1.0, {})
    assert queue.enqueue(items(1), again={original.key}) == 1
    assert key_states(queue.trials(), [original.key]) == {original.key: "waiting"}
    copy = queue.claim()
    assert copy is not None and copy.user_attrs[RETRAINS_ATTR] == original.number, "not dropped as a duplicate"
    assert queue.fail(copy, {STATUS_ATTR: "failed"})
    assert key_states(queue.trials(), [original.key]) == {original.key: "failed"}
    assert queue.enqueue(items(1)) == 1, "a failed copy is queued again by the next run, without being forced"
    retry = queue.claim()
    assert retry is not None, "the replaced attempt still does not count"
    assert queue.complete(retry, 1.0, {})
    assert key_states(queue.trials(), [original.key]) == {original.key: "completed"}
    assert queue.enqueue(items(1)) == 0


def test_interrupted_trial_is_requeued_with_its_identity(tmp_path):
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", "q", FAST)
    queue.enqueue(items(2))
    claim = queue.claim()
    queue.set_attrs(claim, {"worker": "w1", "mlflow_run_id": "abc"})
    assert queue.fail(claim, {STATUS_ATTR: "interrupted"}, requeue=True)
    waiting = queue.trials((TrialState.WAITING,))
    copy = next(t for t in waiting if t.user_attrs[KEY_ATTR] == claim.key)
    assert copy.user_attrs[CONFIG_ATTR] == {"i": 0}
    assert "worker" not in copy.user_attrs and "mlflow_run_id" not in copy.user_attrs
    assert copy.system_attrs["requeued_from"] == claim.number
    assert key_states(queue.trials(), [claim.key]) == {claim.key: "waiting"}


def test_stale_trial_of_a_silent_worker_goes_back_and_its_claim_is_lost(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = TrialQueue.open(url, "q", FAST)
    queue.enqueue(items(1))
    dead = queue.claim()  # taken, then its worker never beats again
    other = TrialQueue.open(url, "q")  # default settings: the study's stored ones win
    assert other.settings == FAST
    assert other.claim() is None
    time.sleep(FAST.grace_period_s + 1.5)
    other.fail_stale()
    retry = other.claim()
    assert retry is not None and retry.key == dead.key and retry.number != dead.number
    assert not queue.holds(dead)
    assert not queue.complete(dead, 1.0, {}), "a worker that lost its trial cannot complete it"
    assert other.complete(retry, 1.0, {})
    status = collect(other, [dead.key])
    assert status.complete and status.attempts == {"lost": 1}


def test_status_counts_workers_and_eta(tmp_path):

    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", "q", FAST)
    queue.enqueue(items(4))
    for _ in range(2):
        queue.complete(queue.claim(), 0.5, {STATUS_ATTR: "completed"})
    queue.claim()
    now = time.time()
    queue.record_worker(WorkerRecord("h:1", "h", 1, "training", now, trial=2))
    queue.record_worker(WorkerRecord("h:2", "h", 2, "stopped", now - 100))
    status = collect(queue, [i.key for i in items(4)], now=now)
    assert (status.done, status.keys["running"], status.keys["waiting"]) == (2, 1, 1)
    assert [w.worker for w in status.alive] == ["h:1"] and [w.worker for w in status.gone] == ["h:2"]
    assert status.eta_s is not None and status.eta_s >= 0


def test_default_storage_sits_beside_a_sqlite_mlflow_store(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert default_storage_url(f"sqlite:///{tmp_path}/mlflow.db") == f"sqlite:///{tmp_path}/optuna.db"
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://h/db")
    assert default_storage_url(f"sqlite:///{tmp_path}/mlflow.db") == "postgresql://h/db"


def test_a_tuning_study_shares_the_queue_retries_first_then_samples(tmp_path):
    """What `study tune` needs from the same workers: ask() pops re-queued trials before sampling,
    and an asked trial whose worker dies goes stale and comes back with its params."""
    queue = TrialQueue.open(f"sqlite:///{tmp_path / 'optuna.db'}", "tune", FAST)
    claim, trial = queue.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    queue.fail(claim, {STATUS_ATTR: "interrupted"}, requeue=True)
    again, retried = queue.ask()
    assert retried.suggest_float("x", 0.0, 1.0) == x, "the re-queued trial keeps its params"
    time.sleep(FAST.grace_period_s + 1.5)  # its worker "dies": no more beats
    queue.fail_stale()
    third, revived = queue.ask()
    assert revived.suggest_float("x", 0.0, 1.0) == x and third.number > again.number
    assert queue.complete(third, 0.9, {STATUS_ATTR: "completed"})
    fresh, sampled = queue.ask()
    assert 0.0 <= sampled.suggest_float("x", 0.0, 1.0) <= 1.0
    assert "fixed_params" not in queue.trial(fresh.number).system_attrs, "nothing waited: the sampler proposed it"


def test_a_group_is_taken_together_and_comes_back_whole_when_its_worker_dies(tmp_path):
    """An executor that trains several trials at once gets them as one claim; if its worker dies,
    every trial of the group goes stale and can be taken again, as a group."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = TrialQueue.open(url, "g", FAST)
    queue.enqueue([QueueItem(key=f"k{i}", config={"i": i}, group="even" if i % 2 == 0 else "odd")
                   for i in range(6)] + [QueueItem(key="alone", config={})])
    group = queue.claim_group(10)
    assert [c.key for c in group] == ["k0", "k2", "k4"] and {c.group for c in group} == {"even"}
    other = TrialQueue.open(url, "g", FAST)
    odd = other.claim_group(2)
    assert [c.key for c in odd] == ["k1", "k3"], "a group is capped at the asked size"
    for claim in odd:
        assert other.complete(claim, 0.5, {STATUS_ATTR: "completed"})
    assert [c.key for c in other.claim_group(5)] == ["k5"]
    assert [c.key for c in other.claim_group(5)] == ["alone"], "a trial without a group is taken alone"
    time.sleep(FAST.grace_period_s + 1.5)  # the first worker "dies": its group's beats stop
    other.fail_stale()
    again = other.claim_group(10)
    assert sorted(c.key for c in again) == ["k0", "k2", "k4"], "the whole group came back"
    assert all(not queue.holds(c) for c in group), "the dead worker's claims are lost"


def test_a_worker_takes_a_group_of_a_program_it_compiled_before_an_older_one(tmp_path):
    """Groups "<program>|seed=<s>": preferring known programs takes the oldest such group, else the oldest."""
    from study.training.executors.registry import program_of

    url = f"sqlite:///{tmp_path / 'q.db'}"
    queue = TrialQueue.open(url, "p", FAST)
    groups = ["A|seed=0", "B|seed=0", "A|seed=1", "B|seed=1"]
    queue.enqueue([QueueItem(key=f"k{i}", config={"i": i}, group=g) for i, g in enumerate(groups)])
    assert program_of("A|seed=1") == "A" and program_of("alone") == "alone" and program_of(None) is None
    knows_b = [c.key for c in queue.claim_group(10, prefer=lambda g: program_of(g) == "B")]
    assert knows_b == ["k1"], "B's oldest group before the older A group"
    assert [c.key for c in queue.claim_group(10, prefer=lambda g: program_of(g) == "B")] == ["k3"]
    assert [c.key for c in queue.claim_group(10, prefer=lambda g: program_of(g) == "B")] == ["k0"], \
        "no B left: the oldest group"


def test_a_group_trained_together_counts_its_time_once_in_the_eta(tmp_path):
    """12 trials of one group, each spanning the group's 12 s, cost 1 s each; lone trials their own span."""
    import datetime as dt

    from optuna.trial import create_trial

    from study.core.names import GROUP_ATTR, WORKER_ATTR
    from study.queue.progress import seconds_per_trial

    start = dt.datetime(2026, 1, 1)

    def done(offset: float, seconds: float, **attrs):
        trial = create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=attrs)
        trial.datetime_start = start + dt.timedelta(seconds=offset)
        trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=seconds)
        return trial

    group = [done(0.01 * i, 12.0 - 0.01 * i, **{GROUP_ATTR: "A|seed=0", WORKER_ATTR: "w1"}) for i in range(12)]
    assert abs(seconds_per_trial(group) - 1.0) < 1e-9
    alone = [done(0, 3.0), done(5, 5.0)]
    alone[1].number = 1
    assert abs(seconds_per_trial(alone) - 4.0) < 1e-9
