"""A quiet start: no TensorFlow/XLA/absl banner lines or per-trial retracing warnings unless --verbose."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_start() -> None:
    """Set before TensorFlow or JAX is imported (their C++ logs read the environment once)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # oneDNN / cuda / XLA notices
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*triggered tf.function retracing.*")
