"""Choose the Keras backend (and quiet its start-up) before Keras is first imported."""

from __future__ import annotations

import os
import sys

from study.core.quiet import native_banners_filtered

BACKENDS = ("tensorflow", "jax")


class BackendError(RuntimeError):
    pass


def name_backend(name: str) -> None:
    """Only set KERAS_BACKEND (nothing imported): enough for code that may import Keras before
    select_backend runs (MNIST's web route), and cheap, so checking the data comes first."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = name


def select_backend(name: str, threads: int | None = None) -> None:
    """Set KERAS_BACKEND for this process; fail if Keras already runs another backend.

    `threads` caps the math library's threads, so several workers on one machine do
    not fight for the same cores.
    """
    if name not in BACKENDS:
        raise BackendError(f"backend {name!r} is not allowed; allowed values: {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise BackendError(f"Keras is already running the {current} backend in this process; "
                               f"start a new process for {name}")
        if _configured:  # else Keras came in early (MNIST's web route): its threads and caches are set below
            return
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_banners_filtered():  # TensorFlow's oneDNN banner ignores every log setting (study.core.quiet)
        import_tensorflow(required=name == "tensorflow")
        if name == "jax":
            enable_jax_compilation_cache()
    os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}").strip()
        if name == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    _configured.append(name)


_configured: list[str] = []  # backends select_backend has set up in this process


def import_tensorflow(required: bool) -> None:
    """Import TensorFlow now, where its banners are filtered: Keras imports it on either backend
    (`keras.utils.set_random_seed` seeds TensorFlow too whenever it is installed)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if required:
            raise


def enable_jax_compilation_cache(directory: str | None = None) -> None:
    """Reuse XLA executables across trials and processes.

    Keras builds fresh jitted functions for every model, so JAX's in-memory cache
    never hits; the persistent cache is keyed on the compiled program itself, and
    grid trials share a handful of programs (weights and learning rate are inputs,
    not constants). This removes ~1-4 s of compilation from every trial after the
    first of its shape, without changing what is computed.
    """
    import jax

    directory = directory or os.environ.get("STUDY_JAX_CACHE_DIR") or os.path.join(
        os.environ.get("STUDY_CACHE_DIR", os.path.join(os.getcwd(), ".cache")), "jax")
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
