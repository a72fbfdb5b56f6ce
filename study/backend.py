"""Choose the Keras backend (and quiet its start-up) before Keras is first imported."""

from __future__ import annotations

import os
import sys

BACKENDS = ("tensorflow", "jax")


class BackendError(RuntimeError):
    pass


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
        return
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}").strip()
        if name == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)


def active_backend() -> str:
    import keras

    return keras.backend.backend()
