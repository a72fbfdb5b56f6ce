"""The lesson's claims, one row each: the within-condition contrast that tests it, its numbers, a verdict.

Each claim names the contrast that tests it *where the lesson makes it* (ReLU vs sigmoid under the
lesson's SGD with a sane initialisation, Xavier vs He within each activation, ...), measured by blocks
(see study.analysis.stats.blocks). Verdicts:
- `supported`: the 95% interval lies on the claimed side of zero;
- `contradicted`: it lies on the other side;
- `no effect`: the claim says a level helps, but the interval lies inside +-margin (equivalent to zero);
- `inconclusive`: the interval covers zero and reaches past the margin;
- `not testable here`: the study lacks the contrast or its precondition (why is given).
Claims the study cannot touch at all (it does not vary the factor) are rows too, so a reader sees
what this study does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from study.analysis.stats.blocks import within
from study.analysis.stats.failures import FAILED, LEARNED
from study.analysis.stats.intervals import level_column, t_interval
from study.analysis.stats.noop import LR_CHANGED

ACCURACY_MARGIN = 0.005  # 0.5 pp: a change smaller than this is no change worth a sentence
RATE_MARGIN = 0.05  # 5 percentage points of failure rate
OVERFIT_MIN = 0.01  # train accuracy must exceed val accuracy by 1 pp for dropout to have something to do
PRIMARY = "final_val_accuracy"
MEASURES = {PRIMARY: "val accuracy", "test_accuracy": "test accuracy", FAILED: "share of trials that do not learn"}


@dataclass(frozen=True)
class Check:
    """One contrast: `level` vs `reference` of `factor` (labels found by config field values) inside `where`."""

    claim: str
    factor: str
    field: str
    level: object
    reference: object
    where: dict[str, tuple[str, tuple]] = field(default_factory=dict)  # factor -> (config field, allowed values)
    metric: str = PRIMARY
    learners_only: bool = False
    expected: int = 1  # +1: level higher; -1: level lower; 0: no difference


def lesson_checks() -> list[Check]:
    relu_claim = "ReLU trains deep nets better than sigmoid, whose gradients vanish"
    init_claim = "Plain N(0, 1) initialisation fails; Xavier/He fix it"
    match_claim = "Xavier suits sigmoid, He suits ReLU"
    sane = {"init": ("init", ("xavier", "he")), "batch_norm": ("batch_norm", (False,))}
    under = {name: {**sane, "optimizer": ("optimizer", (name,))} for name in ("sgd", "adam")}
    checks = [
        Check(relu_claim, "activation", "activation", "relu", "sigmoid", under["sgd"]),
        Check(relu_claim, "activation", "activation", "relu", "sigmoid", under["sgd"], metric=FAILED, expected=-1),
        Check(relu_claim, "activation", "activation", "relu", "sigmoid", under["adam"]),
    ]
    for activation in ("sigmoid", "relu"):
        for init in ("xavier", "he"):
            within = {"activation": ("activation", (activation,))}
            checks.append(Check(init_claim, "init", "init", init, "normal", within))
    checks += [
        Check(match_claim, "init", "init", "xavier", "he", {"activation": ("activation", ("sigmoid",))}),
        Check(match_claim, "init", "init", "he", "xavier", {"activation": ("activation", ("relu",))}),
        Check("Batch normalisation makes training robust", "batch_norm", "batch_norm", True, False, metric=FAILED,
              expected=-1),
        Check("Batch normalisation raises accuracy", "batch_norm", "batch_norm", True, False, learners_only=True),
        Check("Dropout regularises: better validation accuracy", "dropout", "dropout", "*", 0.0, learners_only=True),
        Check("Adam beats SGD", "optimizer", "optimizer", "adam", "sgd", metric="test_accuracy"),
        Check("Warm-up then cosine decay helps", "schedule", "schedule", "warmup_cosine_corrected", "constant"),
        Check("The lesson's warm-up formula is warm-up (not a lost epoch)", "schedule", "schedule", "warmup_cosine",
              "warmup_cosine_corrected", expected=0),
        Check("ReduceLROnPlateau helps when val loss stalls", "schedule", "schedule", "plateau", "constant"),
    ]
    return checks


def lesson_claims(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """The claims table (see the module docstring) for a study's main trials (with `failed`/`learned`)."""
    rows = [evaluate(check, frame, factor_levels) for check in lesson_checks()]
    return pd.DataFrame(rows)


def labels_of(frame: pd.DataFrame, factor: str, field_name: str, values: tuple) -> list[str]:
    """The factor's level labels whose trials have `field_name` in `values` ("*": any non-reference value)."""
    column = level_column(factor)
    if column not in frame or field_name not in frame:
        return []
    hits = frame[frame[field_name].isin(values)] if values != ("*",) else frame
    return list(dict.fromkeys(hits[column].astype(str)))


def evaluate(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> dict:
    row = {"claim": check.claim, "contrast": "", "measure": _measure(check), "diff": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "unit": "", "n": 0, "verdict": "not testable here", "why": ""}
    if check.factor not in factor_levels:
        row["contrast"] = _nominal(check)
        row["why"] = f"this study does not vary `{check.factor}`"
        return row
    special = {"optimizer": _optimizer_levels, "dropout": _dropout_levels}.get(check.factor)
    levels, note, testable = (special(check, frame, factor_levels) if special
                              else _plain_levels(check, frame, factor_levels[check.factor]))
    if levels is None:
        row["contrast"] = _nominal(check)
        row["why"] = note
        return row
    level, reference = levels
    where, dropped = {}, []
    for name, (field_name, allowed) in check.where.items():
        if name in factor_levels:
            where[name] = [lv for lv in labels_of(frame, name, field_name, allowed) if lv in factor_levels[name]]
        elif field_name in frame and not frame[field_name].isin(allowed).any():
            fixed = ", ".join(sorted({str(v).lower() if isinstance(v, bool) else str(v) for v in frame[field_name]}))
            row["contrast"] = f"{check.factor}: {level} vs {reference}, within {name}=" + "/".join(
                str(v).lower() if isinstance(v, bool) else str(v) for v in allowed)
            row["why"] = f"the condition is not in this study: it runs `{field_name}` = {fixed} only"
            return row
        else:
            dropped.append(name)
    fixed = {n: sorted({str(v).lower() if isinstance(v, bool) else str(v) for v in frame[check.where[n][0]]})
             for n in dropped if check.where[n][0] in frame}
    condition = ", ".join(f"{n}={'/'.join(v)}" for n, v in {**where, **fixed}.items())
    row["contrast"] = f"{check.factor}: {level} vs {reference}" + (f", within {condition}" if condition else "")
    if any(not v for v in where.values()):
        row["why"] = "the condition's levels were not run"
        return row
    effect = within(frame, factor_levels, check.factor, level, reference, check.metric, where,
                    keep=LEARNED if check.learners_only else None)
    row.update(diff=effect["diff"], ci_low=effect["ci_low"], ci_high=effect["ci_high"], unit=effect["unit"],
               n=int(effect["blocks"]))
    notes = [note] if note else []
    if dropped:
        notes.append("the study fixes " + ", ".join(f"`{n}`" for n in dropped))
    if check.factor == "schedule":
        schedule_notes, acted = _schedule_notes(frame, level)
        notes += schedule_notes
        testable = testable and acted
    if not testable:
        row["why"] = "; ".join(notes)
        return row
    row["verdict"] = verdict(check.expected, effect["ci_low"], effect["ci_high"],
                             RATE_MARGIN if check.metric == FAILED else ACCURACY_MARGIN)
    row["why"] = "; ".join(notes)
    return row


def _nominal(check: Check) -> str:
    """The contrast as the claim names it, for a study that cannot run it."""
    def text(value: object) -> str:
        return "the largest rate" if value == "*" else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{check.field}: {text(check.level)} vs {text(check.reference)}"


def verdict(expected: int, low: float, high: float, margin: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not testable here"
    inside = -margin < low and high < margin
    if expected == 0:
        return "supported" if inside else ("contradicted" if low > 0 or high < 0 else "inconclusive")
    signed_low, signed_high = sorted((expected * low, expected * high))  # the interval, claimed side positive
    if signed_low > 0:
        return "supported"
    if signed_high < 0:
        return "contradicted"
    return "no effect" if inside else "inconclusive"


def _measure(check: Check) -> str:
    measure = MEASURES.get(check.metric, check.metric)
    return measure + (" among trials that learn" if check.learners_only else "")


def _plain_levels(check: Check, frame: pd.DataFrame, labels: list[str]) -> tuple[tuple[str, str] | None, str, bool]:
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


def _dropout_levels(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]):  # noqa: ANN202
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


def _optimizer_levels(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]]):  # noqa: ANN202
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


def _schedule_notes(frame: pd.DataFrame, level: str) -> tuple[list[str], bool]:
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
