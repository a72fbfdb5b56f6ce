"""Every way the data can be bad, through the real CLI: one line naming the file and the problem, exit 2,
and nothing created (no MLflow store, no queue, no experiment, no run): the data is checked first."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from study.data.mnist import IDX_FILES
from tests.conftest import ROOT, write_spec
from tests.data.conftest import idx_bytes

SPEC = """
name: bad_data
epochs: 1
validation: holdout
train_subset: 200
seeds: [0]
{dataset}
factors:
  dropout: [0.0, 0.2]
"""
TUNE = """
name: bad_data_tune
epochs: 1
train_subset: 200
search_space:
  dropout: {low: 0.0, high: 0.5}
n_trials: 2
"""
IMAGES, LABELS = "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
# What root may do in spite of file modes: without these capabilities, root meets chmod 000 like anyone.
DAC_CAPABILITIES = "-dac_override,-dac_read_search"


def damaged(idx_dir: Path, target: Path, name: str, damage: Callable[[Path], None]) -> Path:
    """A copy of the official files with one of them damaged."""
    target.mkdir()
    for stem in IDX_FILES.values():
        shutil.copyfile(idx_dir / f"{stem}.gz", target / f"{stem}.gz")
    damage(target / name)
    return target


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(64)  # zeros in the middle of the deflate stream
    path.write_bytes(bytes(raw))


def rewrite(transform: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        path.write_bytes(gzip.compress(transform(gzip.decompress(path.read_bytes())), compresslevel=1))
    return apply


def wrong_magic(payload: bytes) -> bytes:
    return (0x804).to_bytes(4, "big") + payload[4:]


def one_label_short(payload: bytes) -> bytes:
    labels = np.frombuffer(payload[8:], dtype=np.uint8)[:-1]
    return idx_bytes(labels)


def tampered_label(payload: bytes) -> bytes:
    return payload[:8] + bytes([(payload[8] + 1) % 10]) + payload[9:]


def run_cli_as(args: list[str], cwd: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STUDY_DATA_DIR", None)  # the data dir is the one given on the command line
    return subprocess.run([*(prefix or []), sys.executable, "-m", "study", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_rejected(result: subprocess.CompletedProcess, work: Path, *words: str) -> str:
    """Exit 2, exactly one line on stderr naming the problem, and no store of any kind written."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, (word, line)
    left = sorted(p.name for p in work.iterdir() if p.name.startswith(("mlflow", "optuna", "mlartifacts", "mlruns")))
    assert not left, f"created before the data was checked: {left}"
    return line


def stores(work: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--storage", f"sqlite:///{work / 'optuna.db'}",
            "--no-report"]


CASES = {
    "truncated gzip": (IMAGES, truncate, ["truncated or corrupt gzip file", "Compressed file ended"]),
    "corrupt gzip": (IMAGES, corrupt, ["truncated or corrupt gzip file"]),
    "wrong magic number": (IMAGES, rewrite(wrong_magic), ["bad IDX magic number 0x00000804"]),
    "wrong shape": (LABELS, rewrite(one_label_short), ["y_test has shape (9999,), expected (10000,)"]),
    "checksum mismatch": (LABELS, rewrite(tampered_label), ["checksum mismatch for y_test"]),
    "missing file": (LABELS, Path.unlink, ["missing t10k-labels-idx1-ubyte.gz"]),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
def test_bad_idx_files_exit_2_naming_the_file_before_anything_is_created(case, tmp_path, idx_dir):
    name, damage, words = CASES[case]
    bad = damaged(idx_dir, tmp_path / "data", name, damage)
    spec = write_spec(tmp_path / "spec.yaml", SPEC.format(dataset=""))
    result = run_cli_as(["run", str(spec), "--data-dir", str(bad), *stores(tmp_path)], tmp_path)
    named = str(bad / name) if case != "missing file" else str(bad)
    assert_rejected(result, tmp_path, named, *words)


@pytest.mark.integration
def test_unreadable_directory_exits_2(tmp_path, idx_dir):
    """chmod 000 stops every user but root, whom CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH let read anything (CI
    runs as root). So as root this one CLI call runs under `setpriv` with those two capabilities removed from
    its bounding set: still root, but file modes now apply to it, exactly as to any other user."""
    bad = damaged(idx_dir, tmp_path / "data", IMAGES, lambda path: None)
    bad.chmod(0)
    prefix = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux's setpriv: cannot make a directory unreadable to root")
        prefix = [setpriv, f"--bounding-set={DAC_CAPABILITIES}", f"--inh-caps={DAC_CAPABILITIES}", "--"]
    spec = write_spec(tmp_path / "spec.yaml", SPEC.format(dataset=""))
    try:
        result = run_cli_as(["run", str(spec), "--data-dir", str(bad), *stores(tmp_path)], tmp_path, prefix)
    finally:
        bad.chmod(0o755)
    assert_rejected(result, tmp_path, str(bad), "not readable (permission denied)")


@pytest.mark.integration
def test_mnist_npz_without_the_expected_arrays_exits_2(tmp_path, mnist):
    bad = tmp_path / "data"
    bad.mkdir()
    np.savez(bad / "mnist.npz", x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test)
    spec = write_spec(tmp_path / "spec.yaml", SPEC.format(dataset=""))
    result = run_cli_as(["run", str(spec), "--data-dir", str(bad), *stores(tmp_path)], tmp_path)
    assert_rejected(result, tmp_path, str(bad / "mnist.npz"), "missing arrays ['y_test']")


@pytest.mark.integration
def test_own_npz_dataset_without_the_expected_arrays_exits_2(tmp_path):
    own = tmp_path / "mine.npz"
    np.savez(own, x_train=np.zeros((20, 4), np.float32), y_train=np.arange(20) % 2, x_test=np.zeros((5, 4)))
    spec = write_spec(tmp_path / "spec.yaml", SPEC.format(dataset=f"dataset: npz:{own}"))
    result = run_cli_as(["run", str(spec), *stores(tmp_path)], tmp_path)
    assert_rejected(result, tmp_path, str(own), "missing array(s) y_test")


@pytest.mark.integration
@pytest.mark.parametrize("command", ["worker", "tune"])
def test_worker_and_tune_check_the_data_before_their_stores_too(command, tmp_path, idx_dir):
    bad = damaged(idx_dir, tmp_path / "data", IMAGES, truncate)
    spec = write_spec(tmp_path / "spec.yaml", TUNE if command == "tune" else SPEC.format(dataset=""))
    options = stores(tmp_path)[:4] + (["--no-report"] if command == "tune" else [])
    result = run_cli_as([command, str(spec), "--data-dir", str(bad), *options], tmp_path)
    assert_rejected(result, tmp_path, str(bad / IMAGES), "truncated or corrupt gzip file")
