"""What a trained trial returns, and how its per-epoch history becomes final metrics (no Keras here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from study.config import TrialConfig
from study.core.names import PROBE_PREFIXES

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def is_epoch_metric(name: str) -> bool:
    """A per-epoch metric every executor reports: the standard ones and the mechanism probes
    (`grad_norm/<layer>`, `saturated/<layer>`, study.training.probes)."""
    return name in EPOCH_METRICS or name.startswith(PROBE_PREFIXES)


@dataclass
class TrialResult:
    config: TrialConfig
    status: str  # completed | diverged (training errors are raised, interruptions too)
    history: dict[str, list[float]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    model_path: Path | None = None
    stopped_by_hook: bool = False  # a TrialHooks.should_stop (e.g. Optuna's pruner) ended it early

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))


def nonfinite(history: dict[str, list[float]]) -> bool:
    return any(not math.isfinite(v) for v in history.get("loss", []))


def summarize_history(history: dict[str, list[float]]) -> dict[str, float]:
    """Final metrics from per-epoch history, using only finite epochs.

    `final_*` describe the kept model (the epoch with the lowest val_loss, whose
    weights the executor kept); `last_*` the last finite epoch.
    """
    losses = history.get("loss", [])
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)
              and math.isfinite(history.get("val_loss", [math.inf] * len(losses))[i])]
    out: dict[str, float] = {"epochs_run": float(len(losses))}
    if not finite:
        return out
    last = finite[-1]
    val_losses = np.array([history["val_loss"][i] for i in finite])
    best = finite[int(np.argmin(val_losses))]
    out["best_epoch"] = float(best)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        values = history.get(name, [])
        if values:
            out[f"last_{name}"] = values[last]
            out[f"final_{name}"] = values[best]
    out["best_val_accuracy"] = max(history["val_accuracy"][i] for i in finite)
    return out
