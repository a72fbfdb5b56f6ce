"""A claim's check (the contrast that tests it), which levels of a study it compares, and the notes that
decide whether it can be tested: the largest dropout only where there is overfitting to regularise, each
optimizer at its own best learning rate only where the study sweeps one, a plateau schedule only where it
fired."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from study.analysis.stats.failures import LEARNED
from study.analysis.stats.intervals import level_column, t_interval
from study.analysis.stats.noop import LR_CHANGED

OVERFIT_MIN = 0.01  # train accuracy must exceed val accuracy by 1 pp for dropout to have something to do
PRIMARY = "final_val_accuracy"


@dataclass(frozen=True)
class Check:
    """One contrast: `level` vs `reference` of `factor` (labels found by config field values) inside `stated`."""

    claim: str
    factor: str
    field: str
    level: object
    reference: object
    stated: dict[str, tuple[str, tuple]] = field(default_factory=dict)  # factor -> (config field, allowed values)
    metric: str = PRIMARY
    learners_only: bool = False
    expected: int = 1  # +1: level higher; -1: level lower; 0: no difference


def labels_of(frame: pd.DataFrame, factor: str, field_name: str, values: tuple) -> list[str]:
    """The factor's level labels whose trials have `field_name` in `values` ("*": any non-reference value)."""
    column = level_column(factor)
    if column not in frame or field_name not in frame:
        return []
    hits = frame[frame[field_name].isin(values)] if values != ("*",) else frame
    return list(dict.fromkeys(hits[column].astype(str)))


def plain_levels(check: Check, frame: pd.DataFrame, labels: list[str]) -> tuple[tuple[str, str] | None, str, bool]:
    level = labels_of(frame, check.factor, check.field, (check.level,))
    reference = labels_of(frame, check.factor, check.field, (check.reference,))
    if not level or not reference:
        missing = check.level if not level else check.reference
        if check.factor == "schedule" and check.level == "warmup_cosine_corrected" and not level:
            return None, ("only the lesson's warm-up formula ran; its first epoch trains at learning rate 0, so "
                          "it measures a lost epoch, not warm-up (add `warmup_cosine_corrected`)"), False
        if str(missing) in labels:
            return None, f"no trial with {check.field} = {missing} has finished yet", False
        return None, f"this study does not run {check.field} = {missing}", False
    return (level[0], reference[0]), "", True


def dropout_levels(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]):  # noqa: ANN202
    """The largest dropout vs none, testable only when there is overfitting to regularise."""
    reference = labels_of(frame, "dropout", "dropout", (0.0,))
    others = frame[~frame[level_column("dropout")].isin(reference)]
    if not reference or others.empty:
        return None, "no dropout-free level to compare with", False
    level = str(others.sort_values("dropout")[level_column("dropout")].iloc[-1])
    plain = frame[frame[level_column("dropout")].isin(reference) & frame[LEARNED]]
    if "last_accuracy" not in plain or plain.empty:
        return (level, reference[0]), "no training accuracy recorded", False
    gap = (plain["last_accuracy"] - plain[PRIMARY]).astype(float)
    low, high = t_interval(gap)
    text = (f"without dropout, last-epoch train accuracy minus val accuracy is {100 * gap.mean():+.2f} pp "
            f"[{100 * low:+.2f}, {100 * high:+.2f}] over {len(gap)} trials")
    if gap.mean() < OVERFIT_MIN:
        return (level, reference[0]), f"nothing to regularise: {text} (no overfitting at this size)", False
    return (level, reference[0]), f"overfitting to regularise: {text}", True


def optimizer_levels(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]):  # noqa: ANN202
    """Each optimizer at its own best learning rate when the study sweeps one per optimizer (Melis et al. 2018);
    with one untuned rate each, the numbers are shown but the claim is not testable."""
    column = level_column("optimizer")
    rates = frame.groupby("optimizer")["learning_rate"].unique() if "optimizer" in frame else pd.Series(dtype=object)
    if not {"adam", "sgd"} <= set(rates.index):
        return None, "the study does not run both Adam and SGD", False
    best = {}
    for name in ("adam", "sgd"):
        labels = labels_of(frame, "optimizer", "optimizer", (name,))
        means = frame[frame[column].isin(labels)].groupby(column)[PRIMARY].mean()
        best[name] = str(means.idxmax())
    swept = all(len(rates[name]) >= 2 for name in ("adam", "sgd"))
    lrs = ", ".join(f"{name} {', '.join(f'{lr:g}' for lr in sorted(rates[name]))}" for name in ("sgd", "adam"))
    if not swept:
        return (best["adam"], best["sgd"]), (f"one untuned learning rate per optimizer ({lrs}): this compares "
                                             "two learning-rate choices, not two optimizers (Melis et al. 2018)"), False
    return (best["adam"], best["sgd"]), (f"each optimizer at its best learning rate by mean val accuracy (swept: "
                                         f"{lrs}); compared on test accuracy, which played no part in the choice"), True


def schedule_notes(frame: pd.DataFrame, level: str) -> tuple[list[str], bool]:
    """What a schedule claim's reader needs (the budget; whether plateau fired) and whether the schedule acted
    in at least half of its trials (a plateau that never fired tests nothing)."""
    notes, acted = [], True
    column = level_column("schedule")
    epochs = int(frame["epochs"].max()) if "epochs" in frame else 0
    if level.startswith("warmup") and "warmup_epochs" in frame:
        warm = int(frame.loc[frame[column] == level, "warmup_epochs"].max())
        notes.append(f"{epochs} epochs, {warm} of them warm-up")
    if level == "plateau" and LR_CHANGED in frame:
        trials = frame[(frame[column] == level) & frame[LR_CHANGED].notna()]
        changed = int(trials[LR_CHANGED].astype(bool).sum())
        acted = changed >= 0.5 * len(trials)
        if acted:
            notes.append(f"the learning rate changed in {changed} of {len(trials)} plateau trials")
        else:
            notes.append(f"the learning rate changed in only {changed} of {len(trials)} plateau trials within "
                         f"{epochs} epochs: mostly the constant schedule under another name")
    return notes, acted


def tuned_optimizer_levels(tuned: str):  # noqa: ANN201 - a levels function as optimizer_levels
    """Adam vs SGD when each arm ran at its own tuned learning rate (`tuned` says how it was tuned): testable."""
    def levels(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]):  # noqa: ANN202
        adam, sgd = (labels_of(frame, "optimizer", "optimizer", (name,)) for name in ("adam", "sgd"))
        if not adam or not sgd:
            return None, "the study does not run both Adam and SGD", False
        return (adam[0], sgd[0]), (f"each arm at its own tuned learning rate ({tuned}); compared on test accuracy, "
                                   "which played no part in the tuning"), True
    return levels
