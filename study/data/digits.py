"""scikit-learn's bundled 8x8 digits (1,797 images, no download): a dataset small enough to
try a model or a study in seconds.

There is no official split, so one is fixed here: a seeded permutation (seed 0), the
last 300 images are the test set, and `validation: holdout` keeps the last 300 of the
remaining 1,497 for validation. Pixels are 0..16, scaled by 1/16.
"""

from __future__ import annotations

import hashlib

import numpy as np

from study.core.errors import DataError
from study.data.arrays import DatasetArrays

TEST_SIZE = 300
HOLDOUT_SIZE = 300
TRAIN_SIZE = 1_797 - TEST_SIZE
# sha256 of the raw images (uint8 0..16, 1797 x 64) and labels (uint8) as scikit-learn bundles them.
IMAGES_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
LABELS_SHA256 = "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"


def load_digits_dataset(data_dir: str | None = None) -> DatasetArrays:
    """The digits as (n, 8, 8, 1) float32 in [0, 1] and uint8 labels, split as the module says."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.data.astype(np.uint8)
    labels = bunch.target.astype(np.uint8)
    for name, array, expected in (("images", images, IMAGES_SHA256), ("labels", labels, LABELS_SHA256)):
        actual = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        if actual != expected:
            raise DataError(f"sklearn.datasets.load_digits: {name} sha256 {actual[:16]}..., expected "
                            f"{expected[:16]}... (a different scikit-learn copy of the data)")
    order = np.random.RandomState(0).permutation(len(labels))
    x = (images[order].astype(np.float32) / 16.0).reshape(-1, 8, 8, 1)
    y = labels[order]
    digest = hashlib.sha256((IMAGES_SHA256 + LABELS_SHA256).encode()).hexdigest()
    return DatasetArrays(x_train=x[:-TEST_SIZE], y_train=y[:-TEST_SIZE], x_test=x[-TEST_SIZE:], y_test=y[-TEST_SIZE:],
                         source="sklearn.datasets.load_digits (bundled with scikit-learn)", name="digits",
                         digest=digest)
