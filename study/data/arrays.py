"""The arrays of a dataset as loaded and verified, and the splits a trial trains on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DatasetArrays:
    """A dataset's raw arrays: inputs (n, *input_shape) and integer labels (n,), as published.

    `x_val`/`y_val` are a validation set the data brings itself (an npz may); without
    them, `validation: holdout` takes the last examples of the training set.
    `digest` fingerprints the arrays (sha256), recorded with every trial's MLflow run;
    `uri` is where they were read from (a path or URL; empty for data bundled with a package).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    name: str = "mnist"
    digest: str = ""
    uri: str = ""
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test}


@dataclass(frozen=True)
class Splits:
    """float32 inputs (uint8 images scaled to [0, 1]) in the dataset's own shape; int32 labels.

    The executor reshapes inputs to what the model takes (the lesson's MLP: 784 values),
    a view that copies and changes nothing.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
