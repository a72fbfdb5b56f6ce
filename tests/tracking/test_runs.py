"""Creating a run whose answer was lost and which was sent again leaves one run, not a RUNNING twin for ever."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking._tracking_service.utils import _get_store

from study.config import TrialConfig
from study.core.names import CREATION_TAG, KEY_TAG, ROLE_TAG, TRIAL_ROLE
from study.tracking.runs import TrialRun, parent_run
from study.tracking.store import configure, experiment_id, tracking_guard


@pytest.fixture()
def lossy_store(tmp_path, monkeypatch):
    """A real SQLite store whose first create_run is carried out and then answers with a reset connection:
    what a tracking server killed between its commit and its reply does. The StoreGuard sends it again."""
    uri = configure(f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = _get_store(uri)
    real = type(store).create_run
    lost: list[str] = []

    def create_and_lose_the_answer(*args, **kwargs):
        run = real(store, *args, **kwargs)
        if not lost:
            lost.append(run.info.run_id)
            raise ConnectionResetError("Connection reset by peer")
        return run

    monkeypatch.setattr(store, "create_run", tracking_guard().wrap(create_and_lose_the_answer))
    return uri, lost


def active_runs(exp_id: str) -> list:
    return mlflow.search_runs(experiment_ids=[exp_id], output_format="list")


def test_a_trial_run_created_twice_by_a_retry_is_one_run(lossy_store):
    uri, lost = lossy_store
    exp_id = experiment_id("lossy", uri)
    config = TrialConfig(seed=3)
    run = TrialRun.start(exp_id, config, {"optimizer": "adam"}, "lossy")
    assert lost and lost[0] != run.run_id, "the first create was carried out, then sent again"
    runs = active_runs(exp_id)
    assert [r.info.run_id for r in runs] == [run.run_id], "the twin the retry left is gone"
    assert runs[0].data.tags[KEY_TAG] == config.key() and runs[0].data.tags[ROLE_TAG] == TRIAL_ROLE
    assert mlflow.MlflowClient().get_run(lost[0]).info.lifecycle_stage == "deleted"


def test_a_parent_run_created_twice_by_a_retry_is_one_run(lossy_store):
    uri, lost = lossy_store
    exp_id = experiment_id("lossy_parent", uri)
    with parent_run(exp_id, "lossy_parent", "hash", "study run", {}) as run:
        assert [r.info.run_id for r in active_runs(exp_id)] == [run.info.run_id]
    assert lost and mlflow.MlflowClient().get_run(lost[0]).info.lifecycle_stage == "deleted"
    ended = mlflow.MlflowClient().get_run(run.info.run_id)
    assert ended.info.status == "FINISHED" and CREATION_TAG in ended.data.tags
