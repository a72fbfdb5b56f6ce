"""The fused and Keras executors give the same results up to seed noise: a reduced grid, end to end.

The full lesson-grid comparison is benchmarks/grid_executors.py (committed results in
benchmarks/results/); this runs the same script on a 6-config grid with 4 seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, write_spec

SMALL = """
name: equivalence_small
backend: jax
epochs: 2
train_subset: 3000
seeds: [0, 1, 2, 3]
base: {hidden_layers: 2, units: 16, dropout: 0.2}  # the fused step draws its own dropout bits
factors:
  init: [normal, xavier, he]
  optimizer:
    - sgd: {optimizer: sgd, learning_rate: 0.05}
    - adam: {optimizer: adam, learning_rate: 0.003}
"""


@pytest.mark.integration
@pytest.mark.slow
def test_fused_and_keras_agree_on_a_reduced_grid(tmp_path, data_dir):
    spec = write_spec(tmp_path / "equivalence_small.yaml", SMALL)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_executors.py"), "--spec", str(spec),
                          "--workers", "1", "--data-dir", str(data_dir), "--out", str(tmp_path / "results")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=1200,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(next((tmp_path / "results").glob("*-grid-executors.json")).read_text())
    equivalence = result["equivalence"]
    assert result["runs"]["keras"]["trials"] == result["runs"]["fused"]["trials"] == 24
    assert equivalence["holds"], equivalence
    assert equivalence["within_2se"] == equivalence["configs"] == 6
    assert equivalence["same_sign"] == equivalence["overlapping"] == equivalence["effects"] == 3
    # Same initial weights and batches as Keras: only float rounding separates the two executors.
    assert equivalence["max_abs_diff"] < 0.01, equivalence
