"""Shared fixtures: real MNIST from the official files (never the web), temp stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path:
    """STUDY_DATA_DIR if set, else ../shared/data/mnist beside the checkout."""
    path = Path(os.environ.get("STUDY_DATA_DIR", SHARED_MNIST))
    if not (path / "train-images-idx3-ubyte.gz").is_file() and not (path / "mnist.npz").is_file():
        pytest.fail(f"MNIST not found in {path}: set STUDY_DATA_DIR to the official IDX files")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return mnist_dir()


@pytest.fixture(scope="session")
def mnist(data_dir):
    from study.data.mnist import load_mnist

    return load_mnist(data_dir)


@pytest.fixture()
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m study ...` in a fresh process, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_ENV = "STUDY_TEST_POSTGRES_URL"  # e.g. postgresql://postgres@127.0.0.1:5432 (set by .ci/run)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A real PostgreSQL server: STUDY_TEST_POSTGRES_URL (CI starts one), else a private
    throwaway cluster on loopback when the binaries are installed, else skip (fail in CI)."""
    from tests.postgres import start_cluster

    if os.environ.get(POSTGRES_ENV):
        yield os.environ[POSTGRES_ENV].rstrip("/")
        return
    try:
        cluster = start_cluster()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not installed ({exc}); .ci/run installs it")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture()
def postgres_db(postgres_server):
    """A factory of fresh, empty databases on the test server: postgres_db('optuna') -> URL."""
    from tests.postgres import create_database

    def make(label: str) -> str:
        return create_database(postgres_server, label)

    return make
