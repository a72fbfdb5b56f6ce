"""Train a sequence of JAX trials three ways: as Keras does (fresh models, one jitted call per
step), with fused steps (train.fuse_train_steps), and with fused steps on reused compiled models
(train.CompiledModels); print the histories and test accuracies (run by test_train.py).

Usage: python tests/scripts/reuse_identity.py DATA_DIR   (prints one JSON line)
"""

import json
import sys

from study.training.backend import select_backend

select_backend("jax")

from study.config import TrialConfig  # noqa: E402
from study.data.mnist import load_mnist  # noqa: E402
from study.data.splits import SplitCache  # noqa: E402
from study.training.executors.base import ExecutionSettings  # noqa: E402
from study.training.keras_executor import train_trial  # noqa: E402

splits = SplitCache(preloaded={"mnist": load_mnist(sys.argv[1])})
base = dict(train_subset=1000, epochs=2, backend="jax", hidden_layers=2, units=16)
# Pairs that share a compiled structure, with different seeds, inits, learning rates and
# schedules; dropout and batch norm carry state (seed generators, moving statistics).
configs = [
    TrialConfig(**base, activation="relu", init="he", batch_norm=True, dropout=0.2, optimizer="adam",
                learning_rate=0.001, seed=0),
    TrialConfig(**base, activation="sigmoid", init="xavier", optimizer="sgd", learning_rate=0.01, seed=2),
    TrialConfig(**base, activation="relu", init="normal", batch_norm=True, dropout=0.2, optimizer="adam",
                learning_rate=0.003, seed=1, schedule="plateau", plateau_patience=1),
    TrialConfig(**base, activation="sigmoid", init="he", optimizer="sgd", learning_rate=0.05, seed=3,
                schedule="warmup_cosine", warmup_epochs=1),
]


def run(reuse: bool, fuse: bool) -> list:
    # 8 steps per execution over 1,000 images (32 batches of 32, the last one short) also
    # exercises the chunk that is too short to fuse.
    settings = ExecutionSettings(reuse_compiled=reuse, fuse_steps=fuse, steps_per_execution=8, save_model=False)
    out = []
    for config in configs:
        result = train_trial(config, splits.get(config.dataset, config.validation, config.train_subset), settings)
        out.append({"history": result.history, "test_accuracy": result.final.get("test_accuracy")})
    return out


print(json.dumps({"keras": run(False, False), "fused": run(False, True), "fused_reused": run(True, True)}))
