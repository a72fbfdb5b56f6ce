"""A user's own arrays in one `.npz` file: `dataset: npz:PATH` in a spec.

Required arrays `x_train`, `y_train`, `x_test`, `y_test`; optional `x_val`, `y_val` (then
`validation: holdout` validates on them). Labels are integers 0..K-1; inputs any numeric
shape (uint8 is scaled by 1/255, anything else is used as float32). Every problem is a
DataError naming the file and the array, found before anything is created or trained.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np

from study.core.errors import DataError
from study.data.arrays import DatasetArrays

PREFIX = "npz:"
_HEADERS: dict[tuple[str, int, int], tuple[tuple[int, ...], int, int, bool]] = {}  # by _stamp(): npz_header
REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")


def npz_path(name: str) -> Path:
    return Path(name.removeprefix(PREFIX)).expanduser()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(name: str) -> tuple[str, int, int]:
    """(absolute path, mtime, size): what the file's cached header is valid for."""
    path = npz_path(name)
    if not path.is_file():
        raise DataError(f"{path}: no such file (dataset {name})")
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def load_npz_dataset(name: str) -> DatasetArrays:
    path = npz_path(name)
    stamp = _stamp(name)
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = set(npz.files)
            missing = [k for k in REQUIRED if k not in present]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; an npz dataset needs "
                                f"{', '.join(REQUIRED)} (optional {', '.join(OPTIONAL)})")
            if ("x_val" in present) != ("y_val" in present):
                raise DataError(f"{path}: has only one of x_val, y_val; give both or neither")
            arrays = {k: np.asarray(npz[k]) for k in (*REQUIRED, *OPTIONAL) if k in present}
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from exc
    check_arrays(path, arrays)
    _HEADERS[stamp] = (tuple(arrays["x_train"].shape[1:]), int(arrays["y_train"].max()) + 1, len(arrays["x_train"]),
                       "x_val" in arrays)
    return DatasetArrays(x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"],
                         y_test=arrays["y_test"], x_val=arrays.get("x_val"), y_val=arrays.get("y_val"),
                         source=f"npz {path}", name=name, digest=file_sha256(path), uri=str(path.resolve()))


def check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Shapes and labels a classifier can train on: matching lengths, one input shape, labels 0..K-1."""
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in arrays]
    shape = arrays["x_train"].shape[1:]
    for split in splits:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or len(x) == 0:
            raise DataError(f"{path}: x_{split} has shape {x.shape}; expected (examples, features...) with at "
                            "least one example")
        if len(x) != len(y):
            raise DataError(f"{path}: x_{split} has {len(x)} examples but y_{split} has {len(y)} labels")
        if x.shape[1:] != shape:
            raise DataError(f"{path}: x_{split} examples have shape {x.shape[1:]}, x_train's have {shape}")
        if y.ndim != 1:
            raise DataError(f"{path}: y_{split} has shape {y.shape}; expected one integer label per example")
        if not np.issubdtype(x.dtype, np.number) or (x.dtype != np.uint8 and not np.all(np.isfinite(x))):
            raise DataError(f"{path}: x_{split} must be numeric and finite (dtype {x.dtype})")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and int(y.min()) < 0):
            raise DataError(f"{path}: y_{split} must hold integer class labels 0..K-1 (dtype {y.dtype}"
                            + (f", min {y.min()}" if np.issubdtype(y.dtype, np.number) and len(y) else "") + ")")
    classes = int(arrays["y_train"].max()) + 1
    if classes < 2:
        raise DataError(f"{path}: y_train has a single class; a classifier needs at least two")
    for split in splits[1:]:
        if int(arrays[f"y_{split}"].max()) >= classes:
            raise DataError(f"{path}: y_{split} has label {int(arrays[f'y_{split}'].max())}, which y_train never "
                            f"uses (its labels are 0..{classes - 1})")


def npz_header(name: str) -> tuple[tuple[int, ...], int, int, bool]:
    """(input shape, classes, training examples, has its own validation set), for validation and models.

    Loading reads and checks the whole file (numpy cannot read an npz member's labels without loading
    them), so the answer is kept per file path, modification time and size: every trial asks.
    """
    stamp = _stamp(name)
    if stamp not in _HEADERS:
        load_npz_dataset(name)
    return _HEADERS[stamp]
