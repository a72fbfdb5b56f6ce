"""The trial ledger (study.queue.ledger): the queue and MLflow agree on every key. A real MLflow store
(SQLite) is the record; the queue is the in-memory one on a manual clock, so a lost lease is a clock
moved past the grace period, not a wait. No training: runs are written the way a worker writes them.
"""

from __future__ import annotations

import mlflow
import pytest

from study.config import TrialConfig
from study.core.names import (DUPLICATE_ATTR, NUMBER_TAG, OPTUNA_STUDY_TAG, RECOVERED_ATTR, RETRAINS_ATTR,
                              RUN_ID_ATTR, STATE_TAG, STATUS_ATTR, STATUS_TAG)
from study.core.status import TrialStatus
from study.queue.clock import ManualClock
from study.queue.ledger import LOST_RUN, TrialLedger
from study.queue.memory import MemoryQueue
from study.queue.records import COMPLETED, FAILED, PRUNED, QueueItem, QueueSettings
from study.tracking.record import MlflowRecord
from study.tracking.runs import TrialRun
from study.tracking.store import configure, experiment_id

SETTINGS = QueueSettings(heartbeat_interval_s=1, grace_period_s=2, max_retry=3)
CONFIGS = [TrialConfig(seed=seed) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module (creating its schema is the slow part); an experiment per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'mlflow.db'}"


@pytest.fixture()
def ledger(store, request) -> TrialLedger:
    uri = configure(store)
    name = request.node.name
    queue = MemoryQueue(name, SETTINGS, ManualClock())
    return TrialLedger(queue, MlflowRecord(experiment_id(name, uri), name))


def items() -> list[QueueItem]:
    return [QueueItem(key=c.key(), config=c.as_dict()) for c in CONFIGS]


def recorded(ledger: TrialLedger, config: TrialConfig, status: str | None, tags: dict | None = None) -> str:
    """A run of `config` as a worker leaves it: finished with `status`, or still RUNNING (status None)."""
    run = TrialRun.start(ledger.record.exp_id, config, {}, ledger.queue.name, extra_tags=tags)
    if status is not None:
        run.finish(status, {"final_val_accuracy": 0.91}, 1.0)
    return run.run_id


def run_of(run_id: str):
    return mlflow.MlflowClient().get_run(run_id)


def test_a_result_mlflow_already_holds_is_adopted_not_trained_again(ledger):
    """A worker died after recording its run but before telling the queue: the next one adopts it."""
    queue = ledger.queue
    queue.enqueue(items())
    run_id = recorded(ledger, CONFIGS[0], TrialStatus.COMPLETED)
    lease = queue.lease()
    adopted = ledger.adopt(lease)
    assert adopted is not None and adopted.status == TrialStatus.RECOVERED and adopted.val_accuracy == 0.91
    trial = queue.trial(lease.number)
    assert trial.state == COMPLETED and trial.value == 0.91
    assert trial.user_attrs[RUN_ID_ATTR] == run_id and trial.user_attrs[RECOVERED_ATTR] is True
    assert trial.status == "completed"
    assert ledger.adopt(queue.lease()) is None, "no run of the next key: it is to be trained"


def test_a_recorded_key_whose_twin_completed_meanwhile_is_dropped_as_a_duplicate(ledger):
    queue = ledger.queue
    queue.enqueue(items()[:1])
    first = queue.lease()
    queue.add({**dict(first.user_attrs)})  # a racing enqueuer's twin, added after `first` was leased
    recorded(ledger, CONFIGS[0], TrialStatus.COMPLETED)
    assert queue.complete(first, 0.91, {STATUS_ATTR: "completed"})
    twin = queue.take(queue.trials()[1])  # taken without the queue's own duplicate check
    adopted = ledger.adopt(twin)
    assert adopted is not None and adopted.status == TrialStatus.DUPLICATE
    dropped = queue.trial(twin.number)
    assert dropped.state == FAILED and dropped.user_attrs[DUPLICATE_ATTR] == first.number


def test_a_run_left_open_by_a_lost_attempt_is_closed_before_the_key_is_trained(ledger):
    queue = ledger.queue
    queue.enqueue(items()[:1])
    dead = queue.lease()
    left_open = recorded(ledger, CONFIGS[0], None)  # its worker was killed mid-trial
    queue.clock.advance(SETTINGS.grace_period_s + 1)
    queue.fail_stale()
    retry = queue.lease()
    assert retry.number != dead.number and ledger.adopt(retry) is None
    run = run_of(left_open)
    assert run.info.status == "KILLED" and run.data.tags[STATUS_TAG] == "interrupted"
    assert run.data.tags["error"] == LOST_RUN


def test_a_worker_that_stalled_past_the_grace_period_is_told_the_trial_is_no_longer_ours(ledger):
    queue = ledger.queue
    queue.enqueue(items()[:1])
    stalled = queue.lease()
    assert ledger.still_ours(stalled)
    queue.clock.advance(SETTINGS.grace_period_s + 1)
    assert ledger.still_ours(stalled), "stale, but nobody failed it yet"
    queue.fail_stale()  # another worker looks
    assert not ledger.still_ours(stalled)
    assert not queue.complete(stalled, 0.9, {}), "its result is not told"


def test_a_key_mlflow_lost_is_queued_again_and_only_that_one(ledger):
    """The queue calls k0 and k1 done; MLflow has k1's run only (k0's was deleted): k0 is queued again,
    its copy naming the completed attempt it replaces; a second enqueue adds nothing."""
    queue = ledger.queue
    assert ledger.enqueue(items()[:2]) == 2
    for lease in (queue.lease(), queue.lease()):
        assert queue.complete(lease, 0.9, {STATUS_ATTR: "completed"})
    recorded(ledger, CONFIGS[1], TrialStatus.COMPLETED)
    assert ledger.enqueue(items()) == 2, "k0 again, and k2 for the first time"
    copies = [t for t in queue.trials() if t.number >= 2]
    assert [(t.key, t.user_attrs.get(RETRAINS_ATTR)) for t in copies] == [(CONFIGS[0].key(), 0), (CONFIGS[2].key(), None)]
    assert ledger.enqueue(items()) == 0


def test_a_tuning_attempts_runs_are_linked_mirrored_and_closed_when_it_is_retried(ledger):
    queue = ledger.queue
    queue.enqueue(items()[:1])
    first = queue.lease()
    tags = {OPTUNA_STUDY_TAG: queue.name, NUMBER_TAG: str(first.number)}
    left_open = recorded(ledger, CONFIGS[0], None, tags)
    ledger.link(first, left_open)
    assert queue.trial(first.number).user_attrs[RUN_ID_ATTR] == left_open
    queue.clock.advance(SETTINGS.grace_period_s + 1)
    queue.fail_stale()
    retry = queue.lease()
    ledger.close_earlier_attempts(retry)
    assert run_of(left_open).info.status == "KILLED"
    finished = recorded(ledger, CONFIGS[0], TrialStatus.PRUNED, {**tags, NUMBER_TAG: str(retry.number)})
    assert queue.prune(retry, {})
    ledger.mirror([finished], PRUNED)
    assert run_of(finished).data.tags[STATE_TAG] == "PRUNED", "Optuna's name for the state, as before"
