"""Training behaviour on real MNIST subsets: divergence, determinism, execution settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from study.training.backend import select_backend

select_backend("tensorflow")

from study.config import TrialConfig  # noqa: E402
from study.data.splits import make_splits  # noqa: E402
from study.training.executors.base import ExecutionSettings  # noqa: E402
from study.training.keras_executor import train_trial  # noqa: E402
from study.training.models import model_inputs  # noqa: E402
from study.training.results import summarize_history  # noqa: E402

SMALL = TrialConfig(validation="holdout", train_subset=2000, epochs=2)


@pytest.fixture(scope="module")
def splits(mnist):
    splits = make_splits(mnist, "holdout", 2000, 10_000)
    # a 2,000-image validation set keeps these tests fast; the split logic is tested elsewhere
    return splits.__class__(splits.x_train, splits.y_train, splits.x_val[:2000], splits.y_val[:2000],
                            splits.x_test[:2000], splits.y_test[:2000])


def test_nan_loss_stops_the_trial_as_diverged(splits, tmp_path):
    config = SMALL.replace(init="normal", learning_rate=1e6, epochs=3)
    result = train_trial(config, splits, ExecutionSettings(save_model=False), workdir=tmp_path)
    assert result.status == "diverged"
    assert any(not math.isfinite(v) for v in result.history["loss"])
    assert result.epochs_run < 3 or not math.isfinite(result.history["loss"][-1])
    # recorded metrics come from finite epochs only
    assert all(math.isfinite(v) for v in result.final.values())


def test_same_seed_same_metrics_and_steps_per_execution_changes_nothing(splits, tmp_path):
    config = SMALL.replace(dropout=0.2, batch_norm=True, seed=7)
    a = train_trial(config, splits, ExecutionSettings(steps_per_execution=1, save_model=False),
                    workdir=tmp_path / "a")
    b = train_trial(config, splits, ExecutionSettings(steps_per_execution=64, save_model=False),
                    workdir=tmp_path / "b")
    assert a.status == b.status == "completed"
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert np.allclose(a.history[name], b.history[name], rtol=0, atol=1e-6), name
    other_seed = train_trial(config.replace(seed=8), splits, ExecutionSettings(save_model=False),
                             workdir=tmp_path / "c")
    assert other_seed.history["loss"] != a.history["loss"]


def test_best_checkpoint_is_restored_for_the_test_evaluation(splits, tmp_path):
    # Adam at lr 0.05 is noisy: the best val_loss epoch is often not the last one.
    config = SMALL.replace(optimizer="adam", learning_rate=0.01, epochs=4, seed=3)
    result = train_trial(config, splits, ExecutionSettings(), workdir=tmp_path)
    best = int(result.final["best_epoch"])
    assert best == int(np.argmin(result.history["val_loss"]))
    assert result.final["final_val_accuracy"] == result.history["val_accuracy"][best]
    # validation and test are different images; the kept model's test accuracy is near its val accuracy
    assert abs(result.final["test_accuracy"] - result.final["final_val_accuracy"]) < 0.1
    assert result.model_path is not None and result.model_path.suffix == ".keras"
    import keras

    reloaded = keras.models.load_model(result.model_path)
    _, acc = reloaded.evaluate(model_inputs(reloaded, splits.x_test), splits.y_test, verbose=0, batch_size=2048)
    assert acc == pytest.approx(result.final["test_accuracy"], abs=1e-6)
    # The saved model is the best epoch's, not the last one's: it reproduces that epoch's val accuracy.
    _, val_acc = reloaded.evaluate(model_inputs(reloaded, splits.x_val), splits.y_val, verbose=0, batch_size=2048)
    assert val_acc == pytest.approx(result.history["val_accuracy"][best], abs=1e-6)


def test_learning_rate_actually_used_is_logged(splits, tmp_path):
    config = SMALL.replace(schedule="warmup_cosine", warmup_epochs=1, epochs=3, learning_rate=0.05)
    result = train_trial(config, splits, ExecutionSettings(save_model=False), workdir=tmp_path)
    assert result.history["learning_rate"] == pytest.approx([0.0, 0.05, 0.025], abs=1e-7)
    # the lesson's epoch-0 rate of 0 really means no learning in epoch 1
    assert result.history["accuracy"][0] < 0.2


def test_summarize_history_ignores_nonfinite_epochs():
    history = {"loss": [1.0, 0.5, float("nan")], "accuracy": [0.5, 0.8, 0.1],
               "val_loss": [0.9, 0.6, float("nan")], "val_accuracy": [0.6, 0.85, 0.1]}
    final = summarize_history(history)
    assert final["best_epoch"] == 1 and final["last_loss"] == 0.5 and final["final_val_accuracy"] == 0.85
    assert final["epochs_run"] == 3


def test_fused_steps_and_reused_compiled_models_compute_exactly_what_keras_computes(data_dir):
    """JAX trials fuse steps into one XLA program (keras_internals.fuse_train_steps) and reuse compiled
    models per structure (keras_internals.CompiledModels); every history and test accuracy must be
    bit-identical to Keras' own fit on fresh models (a separate process: one backend each)."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "reuse_identity.py"), str(data_dir)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    keras_way = result["keras"]
    assert len(keras_way) == 4 and all(len(r["history"]["loss"]) == 2 for r in keras_way)
    assert result["fused"] == keras_way
    assert result["fused_reused"] == keras_way
