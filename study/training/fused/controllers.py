"""Per-trial training decisions taken between epochs, as Keras' callbacks take them (no Keras here).

The fused executor trains many trials in one program; what Keras decides per trial in its
callbacks (the learning rate of each epoch, ReduceLROnPlateau, EarlyStopping, the epoch whose
weights are kept) is decided here per trial, with Keras 3's exact rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from study.config import TrialConfig
from study.training.schedules import EPOCH_SCHEDULES

PLATEAU_MIN_DELTA = 1e-4  # ReduceLROnPlateau's default
EARLY_STOPPING_MIN_DELTA = 0.0  # EarlyStopping's default


def improved(current: float, best: float | None, min_delta: float) -> bool:
    """Keras' MonitorCallback._is_improvement in `min` mode: (current - min_delta) < best, None always improves."""
    return best is None or bool(np.less(current - min_delta, best))


@dataclass
class TrialController:
    """One trial's learning rate, plateau and early-stopping state, and why it stopped."""

    config: TrialConfig
    learning_rate: float = field(init=False)
    plateau_best: float | None = None
    plateau_wait: int = 0
    stop_best: float | None = None
    stop_wait: int = 0
    best_val_loss: float = math.inf
    stopped: bool = False
    diverged: bool = False
    stopped_by_hook: bool = False

    def __post_init__(self) -> None:
        self.learning_rate = float(np.float32(self.config.learning_rate))

    def rate_for_epoch(self, epoch: int) -> float:
        """LearningRateScheduler at epoch begin (epoch schedules); plateau and constant keep the current rate."""
        schedule = EPOCH_SCHEDULES.get(self.config.schedule)
        if schedule is not None:
            c = self.config
            self.learning_rate = float(np.float32(schedule(epoch, c.learning_rate, c.warmup_epochs, c.epochs)))
        return self.learning_rate

    def keeps(self, loss: float, val_loss: float) -> bool:
        """BestWeights: this epoch is the new kept one (finite losses, lowest val_loss so far)."""
        if math.isfinite(loss) and math.isfinite(val_loss) and val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            return True
        return False

    def end_epoch(self, epoch: int, val_loss: float) -> None:
        """ReduceLROnPlateau (plateau schedule) and EarlyStopping on val_loss, as their on_epoch_end do."""
        c = self.config
        if c.schedule == "plateau":
            if improved(val_loss, self.plateau_best, PLATEAU_MIN_DELTA):
                self.plateau_best, self.plateau_wait = val_loss, 0
            else:
                self.plateau_wait += 1
                if self.plateau_wait >= c.plateau_patience and self.learning_rate > 0.0:
                    self.learning_rate = float(np.float32(self.learning_rate * c.plateau_factor))
                    self.plateau_wait = 0
        if c.early_stopping_patience > 0:
            self.stop_wait += 1
            if improved(val_loss, self.stop_best, EARLY_STOPPING_MIN_DELTA):
                self.stop_best, self.stop_wait = val_loss, 0
            elif self.stop_wait >= c.early_stopping_patience and epoch > 0:
                self.stopped = True
