"""Learning-rate schedules, as pure functions of the epoch.

The pure functions are what the report plots and what every executor trains with (through
study.training.recipe.EpochPolicy), so the plotted "shark fin" and the trained schedule cannot
drift apart. The rate is assigned to `optimizer.learning_rate` each epoch (Keras 3 refuses
assignment when the optimizer holds a LearningRateSchedule object).
"""

from __future__ import annotations

import math
from typing import Callable

from study.config import TrialConfig


def lesson_warmup_cosine(epoch: int, max_lr: float, warmup_epochs: int, total_epochs: int) -> float:
    """The lesson's formula, verbatim: `epoch / warmup * max_lr`, then cosine decay.

    Keras counts epochs from 0, so the whole first epoch trains with learning rate 0.
    This is reproduced on purpose under the lesson's name (`warmup_cosine`).
    """
    if epoch < warmup_epochs:
        return epoch / warmup_epochs * max_lr
    progress = (epoch - warmup_epochs) / (total_epochs - warmup_epochs)
    return 0.5 * max_lr * (1 + math.cos(math.pi * progress))


def corrected_warmup_cosine(epoch: int, max_lr: float, warmup_epochs: int, total_epochs: int) -> float:
    """`warmup_cosine_corrected`: warm-up counts epochs from 1, so no epoch trains at lr 0.

    Epoch e < W trains at (e + 1) / (W + 1) * max_lr, reaching max_lr at epoch W where
    the same cosine decay as the lesson's takes over.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1) * max_lr
    progress = (epoch - warmup_epochs) / (total_epochs - warmup_epochs)
    return 0.5 * max_lr * (1 + math.cos(math.pi * progress))


EPOCH_SCHEDULES: dict[str, Callable[[int, float, int, int], float]] = {
    "warmup_cosine": lesson_warmup_cosine,
    "warmup_cosine_corrected": corrected_warmup_cosine,
}


def planned_learning_rates(config: TrialConfig) -> list[float] | None:
    """The per-epoch learning rate a schedule prescribes, or None when it reacts to
    training (plateau) and so is only known from the logged values."""
    if config.schedule == "constant":
        return [config.learning_rate] * config.epochs
    if config.schedule in EPOCH_SCHEDULES:
        fn = EPOCH_SCHEDULES[config.schedule]
        return [fn(e, config.learning_rate, config.warmup_epochs, config.epochs) for e in range(config.epochs)]
    return None
