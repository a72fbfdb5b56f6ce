"""Train a sequence of JAX trials twice, with compiled models reused and with fresh models,
and print whether every history and test accuracy is bit-identical (run by test_train.py).

Usage: python tests/scripts/reuse_identity.py DATA_DIR   (prints one JSON line)
"""

import json
import sys

from study.backend import select_backend

select_backend("jax")

from study.config import TrialConfig  # noqa: E402
from study.data import SplitCache, load_mnist  # noqa: E402
from study.train import ExecutionSettings, train_trial  # noqa: E402

splits = SplitCache(load_mnist(sys.argv[1]))
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


def run(reuse: bool) -> list:
    settings = ExecutionSettings(reuse_compiled=reuse, steps_per_execution=8, save_model=False)
    out = []
    for config in configs:
        result = train_trial(config, splits.get(config.validation, config.train_subset), settings)
        out.append({"history": result.history, "test_accuracy": result.final.get("test_accuracy")})
    return out


reused, fresh = run(True), run(False)
print(json.dumps({"identical": reused == fresh, "reused": reused, "fresh": fresh}))
