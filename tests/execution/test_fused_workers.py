"""The fused executor on the real queue and CLI: a group is leased, beaten for, lost and re-queued whole."""

from __future__ import annotations

import os
import signal

import pytest

from study.core.names import GROUP_ATTR, RUN_ID_ATTR, STATUS_ATTR, WORKER_ATTR
from study.queue.records import COMPLETED, FAILED, RUNNING, WAITING
from study.queue.trial_queue import TrialQueue
from tests.conftest import run_cli, write_spec
from tests.execution.test_workers import (assert_each_trial_once, ctrl_c_while_frozen, freeze_worker_mid_trial,
                                          start_cli, stores, trial_runs)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FUSED12 = """
name: fused12
backend: jax
executor: fused
epochs: 3
train_subset: 2000
seeds: [0, 1]
base: {hidden_layers: 2, units: 16, warmup_epochs: 1}
factors:
  init: [normal, xavier, he]
  schedule: [constant, warmup_cosine_corrected]
"""


def group_of(queue: TrialQueue, victim) -> list:
    """Every trial the victim's worker holds with it (while it is frozen): its group, running, its worker."""
    return [t for t in queue.trials((RUNNING,)) if t.user_attrs.get(GROUP_ATTR) == victim.user_attrs[GROUP_ATTR]
            and t.user_attrs.get(WORKER_ATTR) == victim.user_attrs[WORKER_ATTR]]


def test_a_fused_group_killed_mid_epoch_goes_back_whole_and_is_trained_once(tmp_path, data_dir):
    spec = write_spec(tmp_path / "fused12.yaml", FUSED12)
    tracking, storage = stores(tmp_path)
    run, log = start_cli("run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
                         "--data-dir", str(data_dir), "--no-report", "--heartbeat", "1", "--grace", "4",
                         cwd=tmp_path)
    try:
        pid, victim = freeze_worker_mid_trial(run, log, storage, "fused12", tracking, epochs=2)
        held = group_of(TrialQueue.open(storage, "fused12", readonly=True), victim)
        os.kill(pid, signal.SIGKILL)
        run.wait(timeout=600)
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 0, output[-4000:]
    assert len(held) == 6, f"the worker held its whole group of 6 (one seed): {[t.number for t in held]}"
    runs, queue = assert_each_trial_once(spec, tracking, storage)
    for trial in held:
        dead = queue.trial(trial.number)
        assert dead.state == FAILED and STATUS_ATTR not in dead.user_attrs, "failed by its heartbeat"
        retries = [t for t in queue.trials() if t.retry_of == trial.number]
        assert [t.state for t in retries] == [COMPLETED], "re-queued once, finished by the other worker"
        if RUN_ID_ATTR not in dead.user_attrs:  # frozen while its group's runs were being opened: none yet
            continue
        killed = next(r for r in runs if r.info.run_id == dead.user_attrs[RUN_ID_ATTR])
        assert killed.info.status == "KILLED" and killed.data.tags["trial_status"] == "interrupted"
    assert RUN_ID_ATTR in victim.user_attrs, "the victim was frozen with its run open"


def test_ctrl_c_interrupts_the_whole_group_and_the_same_command_finishes_it(tmp_path, data_dir):
    spec = write_spec(tmp_path / "fused12.yaml", FUSED12)
    tracking, storage = stores(tmp_path)
    command = ("run", str(spec), "--tracking-uri", tracking, "--storage", storage, "--data-dir", str(data_dir),
               "--no-report")
    run, log = start_cli(*command, cwd=tmp_path)
    try:
        pid, victim = freeze_worker_mid_trial(run, log, storage, "fused12", tracking, epochs=2)
        held = group_of(TrialQueue.open(storage, "fused12", readonly=True), victim)
        ctrl_c_while_frozen(run, pid, settle_s=0.3)  # one process: the worker is the command itself
    finally:
        run.kill()
    output = log.read_text()
    assert run.returncode == 130, output[-4000:]
    assert "interrupted and re-queued" in output
    queue = TrialQueue.open(storage, "fused12", create=False)
    assert len(held) == 6
    runs = trial_runs(tracking, "fused12")
    for trial in held:
        stopped = queue.trial(trial.number)
        assert stopped.state == FAILED and stopped.user_attrs[STATUS_ATTR] == "interrupted"
        assert [t.state for t in queue.trials() if t.requeued_from == trial.number] == [WAITING]
        run_ = next(r for r in runs if r.info.run_id == queue.trial(trial.number).user_attrs[RUN_ID_ATTR])
        assert run_.info.status == "KILLED" and run_.data.tags["trial_status"] == "interrupted"
    assert not [r for r in runs if r.info.status == "RUNNING"]

    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert_each_trial_once(spec, tracking, storage)
