"""Trials with the same seed see the same batches in the Keras executor on JAX, and the fused executor
draws that order itself: the fact that lets a fused group of one seed share its batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import json, sys
import numpy as np
from study.training.backend import select_backend
select_backend("jax")
from study.config import TrialConfig
from study.data.mnist import load_mnist
from study.data.splits import SplitCache
from study.training.executors.base import ExecutionSettings
from study.training.fused.executor import BatchOrders
from study.training.keras_executor import train_trial

splits = SplitCache(preloaded={"mnist": load_mnist(sys.argv[1])}).get("mnist", "holdout", 640)
original = np.random.permutation
orders = {}
for name, config in {"sgd_xavier": TrialConfig(seed=4), "adam_he_bn": TrialConfig(seed=4, init="he",
                     optimizer="adam", learning_rate=0.001, batch_norm=True, dropout=0.2)}.items():
    drawn = []
    np.random.permutation = lambda n, drawn=drawn: drawn.append(original(n).tolist()) or np.asarray(drawn[-1])
    train_trial(config.replace(backend="jax", epochs=2, train_subset=640, hidden_layers=1, units=8), splits,
                ExecutionSettings(save_model=False, steps_per_execution=4))
    np.random.permutation = original
    orders[name] = drawn
fused = BatchOrders([4, 4], 640, 32)
epochs = [fused.epoch()[0].reshape(-1).tolist() for _ in range(2)]
print(json.dumps({"keras": orders, "fused": epochs}))
"""


def test_same_seed_same_batches_in_the_keras_executor_and_the_fused_one(data_dir):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(data_dir)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    sgd, adam = result["keras"]["sgd_xavier"], result["keras"]["adam_he_bn"]
    assert len(sgd) == 3, "one permutation for Keras' symbolic build, then one per epoch"
    assert sgd == adam, "another config with the same seed sees the same batches"
    assert result["fused"] == sgd[1:], "the fused executor's batches are the Keras executor's"
