"""The datasets beyond MNIST: scikit-learn's digits and a user's npz file (name, digest, checks, info cache)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from study.core.errors import DataError
from study.data import npz
from study.data.registry import dataset_info, load_dataset


def write_npz(path, n_train=40, n_test=10, shape=(4, 4), classes=3, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((n_train, *shape), dtype=np.float32), "y_train": np.arange(n_train) % classes,
              "x_test": rng.random((n_test, *shape), dtype=np.float32), "y_test": np.arange(n_test) % classes}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_digits_has_a_fixed_split_name_and_digest():
    data = load_dataset("digits")
    assert data.name == "digits" and len(data.digest) == 64
    assert data.x_train.shape == (1497, 8, 8, 1) and data.x_test.shape == (300, 8, 8, 1)
    assert load_dataset("digits").digest == data.digest and np.array_equal(load_dataset("digits").y_test, data.y_test)
    info = dataset_info("digits")
    assert (info.num_classes, info.input_shape, info.holdout_train_size) == (10, (8, 8, 1), 1197)


def test_npz_name_and_digest_are_the_file_and_its_sha256(tmp_path):
    name = write_npz(tmp_path / "a.npz")
    data = load_dataset(name)
    assert data.name == name and data.digest == npz.file_sha256(tmp_path / "a.npz")
    info = dataset_info(name)
    assert (info.num_classes, info.input_shape, info.train_size) == (3, (4, 4), 40)


def test_npz_info_is_read_once_per_file_version(tmp_path, monkeypatch):
    name = write_npz(tmp_path / "b.npz")
    loads = []
    real = npz.load_npz_dataset
    monkeypatch.setattr(npz, "load_npz_dataset", lambda n: loads.append(n) or real(n))
    for _ in range(3):
        assert dataset_info(name).train_size == 40
    assert len(loads) == 1  # every trial asks; the file is read once
    write_npz(tmp_path / "b.npz", n_train=60)
    os.utime(tmp_path / "b.npz", ns=(1, 1))  # a rewritten file (other size and mtime) is read again
    assert dataset_info(name).train_size == 60 and len(loads) == 2


@pytest.mark.parametrize("overrides, words", [
    ({"y_train": np.zeros(39, dtype=int)}, "x_train has 40 examples but y_train has 39 labels"),
    ({"x_test": np.zeros((10, 5, 4), dtype=np.float32)}, "x_test examples have shape (5, 4), x_train's have (4, 4)"),
    ({"y_test": np.full(10, 7)}, "y_test has label 7, which y_train never uses"),
    ({"y_train": np.arange(40) - 1}, "y_train must hold integer class labels 0..K-1"),
    ({"x_train": np.full((40, 4, 4), np.nan, dtype=np.float32)}, "x_train must be numeric and finite"),
])
def test_bad_npz_names_the_file_and_the_problem(tmp_path, overrides, words):
    name = write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DataError) as err:
        load_dataset(name)
    assert str(tmp_path / "bad.npz") in str(err.value) and words in str(err.value), str(err.value)


def test_missing_npz_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        dataset_info(f"npz:{tmp_path / 'none.npz'}")
