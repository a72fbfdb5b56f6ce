"""The lesson's first model: where every ablation path starts, and what the confirm stage re-runs first.

(4x32 ReLU, Xavier, SGD 0.01, batch 32, all 60k training images, constant learning rate.)
"""

from __future__ import annotations

LESSON_FIRST_MODEL = {"hidden_layers": 4, "units": 32, "activation": "relu", "init": "xavier", "batch_norm": False,
                      "dropout": 0.0, "optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant",
                      "batch_size": 32, "train_subset": None, "validation": "test"}

# The lesson's condition for its activation claim: SGD, a matched initializer (not N(0, 1)), no batch norm.
LESSON_CONDITION: dict[str, tuple] = {"optimizer": ("sgd",), "init": ("xavier", "he"), "batch_norm": (False,)}
