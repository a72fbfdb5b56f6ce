"""Trials that diverged: how they enter accuracy statistics."""

from __future__ import annotations

import pandas as pd

# A trial that diverged before any finite epoch has no kept model: it predicts
# garbage, so for accuracy it counts as chance (1 in 10 classes), never as missing.
CHANCE_ACCURACY = 0.10
ACCURACY_METRICS = ("final_val_accuracy", "test_accuracy", "best_val_accuracy", "final_accuracy")


def impute_diverged(frame: pd.DataFrame, metrics: tuple[str, ...] = ACCURACY_METRICS) -> pd.DataFrame:
    """Diverged trials without a finite accuracy get chance accuracy, flagged in `imputed`.

    A diverged trial that had finite epochs keeps the metrics of its kept (best
    val_loss) checkpoint, which is a real model. Losses are never imputed: a
    missing loss stays missing and is counted where it is dropped.
    """
    out = frame.copy()
    diverged = out["status"].eq("diverged") if "status" in out else pd.Series(False, index=out.index)
    imputed = pd.Series(False, index=out.index)
    for metric in metrics:
        if metric not in out:
            continue
        missing = diverged & out[metric].isna()
        out.loc[missing, metric] = CHANCE_ACCURACY
        imputed |= missing
    out["imputed"] = imputed
    return out
