"""The Keras-internals speed path is used only on the Keras versions it was verified on."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import warnings
from study.training.backend import select_backend
select_backend("jax")
import keras
from study.config import TrialConfig
from study.training import keras_executor, keras_internals
from study.training.executors.base import ExecutionSettings

keras.__version__ = sys_version = "{version}"
config = TrialConfig(backend="jax", hidden_layers=1, units=4)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = keras_executor.prepared_model(config, ExecutionSettings(steps_per_execution=8), 100)
fused = "fuse_train_steps" in getattr(model.make_train_function, "__qualname__", "")
print("FUSED", fused, "CACHED", len(keras_executor._COMPILED))
print("WARN", " | ".join(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)))
"""


def run_with_keras_version(version: str) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(version=version)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_fast_path_is_off_with_a_warning_outside_the_verified_versions():
    outside = run_with_keras_version("3.99.0")
    assert "FUSED False CACHED 0" in outside
    assert "Keras 3.99.0 is outside the versions the JAX fast path" in outside and "plain Keras" in outside


def test_fast_path_is_on_for_a_verified_version():
    inside = run_with_keras_version("3.15.1")
    assert "FUSED True CACHED 1" in inside
    assert "outside the versions" not in inside
