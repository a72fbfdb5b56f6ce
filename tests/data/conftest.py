"""The official MNIST files as IDX .gz, written from the verified arrays (wherever MNIST came from:
the shared IDX files, the project cache or the PyPI wheel), for tests that damage them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from study.data.mnist import IDX_FILES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic, one big-endian count per dimension, the uint8 payload."""
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = b"".join(int(v).to_bytes(4, "big") for v in (magic, *array.shape))
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory, mnist) -> Path:
    """A read-only-by-convention directory of the four official .gz files (copy before damaging one)."""
    out = tmp_path_factory.mktemp("idx")
    for key, stem in IDX_FILES.items():
        (out / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(mnist.arrays()[key]), compresslevel=1))
    return out
