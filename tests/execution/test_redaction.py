"""A store URL's password never shows: not in what a command prints, not in MLflow tags, the Optuna
study, the report, nor in the error of a store that cannot be opened. The test server trusts local
connections, so the URLs carry a password the server never checks."""

from __future__ import annotations

import socket

import mlflow
import optuna
import pytest

from tests.conftest import run_cli, write_spec

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pw0rd"
SPEC = """
name: secret
epochs: 1
train_subset: 200
seeds: [0]
base: {hidden_layers: 1, units: 16}
factors:
  dropout: [0.0, 0.2]
"""


def with_password(url: str) -> str:
    """postgresql://postgres@host:port/db -> postgresql://postgres:PASSWORD@host:port/db"""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_no_password_in_output_tags_queue_or_report(tmp_path, data_dir, postgres_db):
    tracking, storage = with_password(postgres_db("mlflow")), with_password(postgres_db("optuna"))
    spec = write_spec(tmp_path / "secret.yaml", SPEC)
    ran = run_cli("run", str(spec), "--workers", "2", "--tracking-uri", tracking, "--storage", storage,
                  "--data-dir", str(data_dir), "--reports-dir", str(tmp_path / "reports"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert PASSWORD not in ran.stdout + ran.stderr
    assert "queue postgresql://postgres:***@" in ran.stdout and "MLflow postgresql://postgres:***@" in ran.stdout
    status = run_cli("status", str(spec), "--storage", storage, cwd=tmp_path)
    assert status.returncode == 0 and "postgres:***@" in status.stdout and PASSWORD not in status.stdout

    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(experiment_names=["secret"], output_format="list")
    assert {r.data.tags["study_role"] for r in runs} == {"study", "worker", "trial"}
    for run in runs:  # the worker runs' `command` tags are the spawned workers' own command lines
        recorded = [*run.data.tags.values(), *run.data.params.values()]
        assert not [v for v in recorded if PASSWORD in v], run.info.run_name
    rdb = optuna.storages.RDBStorage(storage)
    study_id = rdb.get_study_id_from_name("secret")  # the queue's records: worker records, settings, trials
    attrs = [rdb.get_study_user_attrs(study_id), rdb.get_study_system_attrs(study_id),
             *((t.user_attrs, t.system_attrs) for t in rdb.get_all_trials(study_id))]
    assert PASSWORD not in repr(attrs)
    assert PASSWORD not in (tmp_path / "reports" / "secret" / "README.md").read_text()


@pytest.mark.parametrize("option", ["--storage", "--tracking-uri"])
def test_a_store_that_cannot_be_opened_is_named_without_its_password(option, tmp_path, data_dir):
    unreachable = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/nowhere"
    spec = write_spec(tmp_path / "secret.yaml", SPEC)
    others = {"--storage": f"sqlite:///{tmp_path / 'optuna.db'}", "--tracking-uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    others[option] = unreachable
    result = run_cli("run", str(spec), "--data-dir", str(data_dir), *[x for kv in others.items() for x in kv],
                     cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open" in lines[0] and "postgres:***@127.0.0.1" in lines[0], result.stderr
    assert PASSWORD not in result.stdout + result.stderr
