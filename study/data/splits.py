"""Split a dataset the way a trial asks (validation on a holdout or on the test set; a training subset)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from study.data.arrays import DatasetArrays, Splits
from study.data.registry import dataset_info, load_dataset


def scaled(x: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1] (pixels / 255); other inputs as float32, unchanged."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return np.asarray(x, dtype=np.float32)


def make_splits(data: DatasetArrays, validation: str, train_subset: int | None, holdout_size: int) -> Splits:
    """holdout: validate on the data's own validation set, else on the last `holdout_size` training
    examples (trained on the rest); test: train on all training examples, validate on the test set."""
    x_all, y_all = scaled(data.x_train), data.y_train.astype(np.int32)
    x_test, y_test = scaled(data.x_test), data.y_test.astype(np.int32)
    if validation == "holdout":
        if data.x_val is not None and data.y_val is not None:
            x_train, y_train, x_val, y_val = x_all, y_all, scaled(data.x_val), data.y_val.astype(np.int32)
        else:
            x_train, y_train = x_all[:-holdout_size], y_all[:-holdout_size]
            x_val, y_val = x_all[-holdout_size:], y_all[-holdout_size:]
    elif validation == "test":
        x_train, y_train, x_val, y_val = x_all, y_all, x_test, y_test
    else:
        raise ValueError(f"validation must be 'holdout' or 'test', got {validation!r}")
    if train_subset is not None:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)


@dataclass(frozen=True)
class SplitInput:
    """One split a trial uses, as its MLflow run records it: which rows of which dataset."""

    context: str  # training | validation | test
    rows: str  # e.g. "train[50000:60000]": the dataset's array and the rows taken from it
    x: np.ndarray
    y: np.ndarray
    digest: str  # of the dataset's digest and `rows`: two runs share it exactly when they used the same data


def split_inputs(data: DatasetArrays, splits: Splits, validation: str) -> list[SplitInput]:
    """The rows behind each of `splits` (made by make_splits from `data` for `validation`)."""
    n_train, n_test = len(data.x_train), len(data.x_test)
    if validation == "test":
        val_rows = f"test[0:{n_test}]"
    elif data.x_val is not None:
        val_rows = f"val[0:{len(data.x_val)}]"
    else:
        val_rows = f"train[{n_train - len(splits.x_val)}:{n_train}]"
    rows = {"training": (f"train[0:{len(splits.x_train)}]", splits.x_train, splits.y_train),
            "validation": (val_rows, splits.x_val, splits.y_val),
            "test": (f"test[0:{n_test}]", splits.x_test, splits.y_test)}
    return [SplitInput(context, where, x, y, hashlib.sha256(f"{data.digest}:{where}".encode()).hexdigest()[:16])
            for context, (where, x, y) in rows.items()]


class SplitCache:
    """Keeps each dataset loaded once and each of its splits in memory once per worker process."""

    def __init__(self, data_dir: str | None = None, preloaded: dict[str, DatasetArrays] | None = None) -> None:
        self.data_dir = data_dir
        self._datasets: dict[str, DatasetArrays] = dict(preloaded or {})
        self._splits: dict[tuple[str, str, int | None], Splits] = {}

    def dataset(self, name: str) -> DatasetArrays:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(name, self.data_dir)
        return self._datasets[name]

    def get(self, dataset: str, validation: str, train_subset: int | None) -> Splits:
        key = (dataset, validation, train_subset)
        if key not in self._splits:
            data = self.dataset(dataset)
            self._splits[key] = make_splits(data, validation, train_subset, dataset_info(dataset).holdout_size)
        return self._splits[key]

    def inputs(self, dataset: str, validation: str, train_subset: int | None) -> list[SplitInput]:
        """What `get` returns, described row by row for the trial's MLflow run."""
        return split_inputs(self.dataset(dataset), self.get(dataset, validation, train_subset), validation)
