"""A quiet start: no TensorFlow/XLA/absl banner lines or per-trial retracing warnings unless --verbose.

Most of it is settings read once, before TensorFlow or JAX is imported. One banner
ignores them all: TensorFlow (2.18 and later) writes "oneDNN custom operations are on"
through absl before absl's logging is set up, whatever TF_CPP_MIN_LOG_LEVEL says, and
turning oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) would change the numbers. So the import of
the backend runs with the process's stderr sent to a file (`native_banners_filtered`),
and every line of it except the known banners is written back to stderr afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_ENV = "STUDY_QUIET"  # "1": set by quiet_start, inherited by the worker processes a command starts
VERBOSE_ENV = "STUDY_VERBOSE"  # "1": set by --verbose, so the worker processes a command starts keep the logs too
# Lines the native libraries print on import that say nothing about this run.
BANNERS = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|failed call to cuInit"
    r"|TF-TRT Warning: Could not find TensorRT")


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def keep_logs() -> None:
    """--verbose: this process and the workers it starts keep every library log line."""
    os.environ[VERBOSE_ENV] = "1"
    os.environ.pop(QUIET_ENV, None)


def quiet_start() -> None:
    """Set before TensorFlow or JAX is imported (their C++ logs read the environment once)."""
    os.environ[QUIET_ENV] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # oneDNN / cuda / XLA notices
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # includes "... triggered tf.function retracing"
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    # "Creating initial MLflow database tables..." and alembic's migration steps on a fresh store
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # A lost database connection's clean-up ("error ignored terminating <psycopg.Pipeline [BAD]>",
    # "Exception during reset or similar"): never raised to us; the StoreGuard (study.core.store_faults)
    # says what the user sees about the store, in one line
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message=".*triggered tf.function retracing.*")


@contextmanager
def native_banners_filtered() -> Iterator[None]:
    """While quiet, send the process's stderr (fd 2, where C++ libraries write) to a file during the
    block, then write it back without the banner lines. Anything else, an import error's traceback
    included, still reaches stderr, only after the block."""
    if os.environ.get(QUIET_ENV) != "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not BANNERS.search(line)]
            if kept:
                os.write(2, "".join(kept).encode())
