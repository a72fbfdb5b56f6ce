"""A quiet start: `study run` prints its own lines only, no TensorFlow/absl/XLA banners, no MLflow table
creation notes and no per-trial tf.function retracing warnings; `--verbose` keeps all of them.

The quiet side is checked on every tiny end-to-end study (tests/execution/test_integration.py, TensorFlow
and JAX, fresh stores), so it costs no run of its own; here, the same study with --verbose."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, write_spec

pytestmark = pytest.mark.integration

SPEC = """
name: quiet_{backend}
epochs: 2
validation: holdout
train_subset: 200
seeds: [0]
backend: {backend}
base: {{units: 16}}
factors:
  activation: [sigmoid, relu]
  dropout: [0.0, 0.2]
"""
NOISE = ("oneDNN custom operations", "absl::InitializeLog", "cpu_feature_guard", "This TensorFlow binary",
         "triggered tf.function retracing", "Creating initial MLflow database tables", "TF-TRT", "cuInit",
         "xla_bridge", "Unable to register")


def study(tmp_path, data_dir, backend: str, *options: str):
    """`python -m study [options] run` on a 4-trial study and fresh stores (MLflow creates its tables)."""
    spec = write_spec(tmp_path / "quiet.yaml", SPEC.format(backend=backend))
    return run_cli(*options, "run", str(spec), "--data-dir", str(data_dir),
                   "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--no-report", cwd=tmp_path)


def assert_quiet(result) -> None:
    """No library banner, retracing warning or table-creation note, nothing at all on stderr
    (used on the first run of test_integration's tiny study, on TensorFlow and on JAX)."""
    output = result.stdout + result.stderr
    assert not [word for word in NOISE if word in output], output
    assert result.stderr.strip() == "", result.stderr


def test_verbose_keeps_them(tmp_path, data_dir):
    """A TensorFlow run with --verbose shows what the quiet start hides (so assert_quiet can fail)."""
    result = study(tmp_path, data_dir, "tensorflow", "--verbose")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "oneDNN custom operations" in output
    assert "triggered tf.function retracing" in output
    assert "Creating initial MLflow database tables" in output
