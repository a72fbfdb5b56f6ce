"""The lesson's claims, each read twice: in the lesson's own condition and over the whole grid.

Each claim names a contrast (ReLU vs sigmoid, Xavier vs N(0, 1) within sigmoid, ...) and, where the
claim itself states one, a condition (`stated`: e.g. activation=sigmoid for "Xavier suits sigmoid").
Every claim is read in two scopes, so no claim is conditioned in one row and unconditioned in another:
- **lesson's condition**: every other factor at the lesson's first model's level (4x32 ReLU, Xavier, no
  batch norm, no dropout, SGD, constant rate; the stated condition overrides it), one block, so the unit
  is the seed;
- **whole grid**: only the stated condition; the other factors vary and the unit is the block. Here the
  contrast is also measured within each level of every other factor (its moderators): when two of those
  sub-effects' 95% intervals lie on opposite sides of zero, the claim **depends on** that moderator, and
  the row lists where it holds and where it reverses (more seeds cannot turn that into one verdict).
Verdicts (study.lesson.claims.verdict): `supported`, `contradicted`, `no effect` (within +-margin),
`inconclusive`, `depends on <moderator>`, `not testable here` (with the reason). Claims the study cannot
touch (it does not vary the factor) are rows too, so a reader sees what this study does not say.
"""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.claim_table import COLUMNS, MEASURES, NOT_TESTABLE
from study.analysis.gradients import GRADIENT_RATIO
from study.analysis.stats.blocks import within
from study.analysis.stats.failures import FAILED, LEARNED
from study.analysis.stats.intervals import level_column
from study.lesson.claim_checks import (Check, dropout_levels, labels_of, optimizer_levels, plain_levels,
                                       schedule_notes, tuned_optimizer_levels)
from study.lesson.reference import LESSON_FIRST_MODEL

ACCURACY_MARGIN = 0.005  # 0.5 pp: a change smaller than this is no change worth a sentence
RATE_MARGIN = 0.05  # 5 percentage points of failure rate
GRADIENT_MARGIN = 0.1  # log10 units: a ratio within x1.26 is no change in how much the gradient shrinks
LESSON, GRID = "lesson's condition", "whole grid"


def lesson_checks() -> list[Check]:
    relu_claim = "ReLU trains deep nets better than sigmoid, whose gradients vanish"
    init_claim = "Plain N(0, 1) initialisation fails; Xavier/He fix it"
    match_claim = "Xavier suits sigmoid, He suits ReLU"
    checks = [
        Check(relu_claim, "activation", "activation", "relu", "sigmoid"),
        Check(relu_claim, "activation", "activation", "relu", "sigmoid", metric=FAILED, expected=-1),
        # the mechanism: with sigmoid the gradient shrinks more from the last hidden layer to the first
        Check(relu_claim, "activation", "activation", "relu", "sigmoid", metric=GRADIENT_RATIO),
    ]
    for activation in ("sigmoid", "relu"):
        for init in ("xavier", "he"):
            checks.append(Check(init_claim, "init", "init", init, "normal", {"activation": ("activation", (activation,))}))
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


def lesson_claims(frame: pd.DataFrame, factor_levels: dict[str, list[str]],
                  lesson_levels: dict[str, str] | None = None, tuned: str = "") -> pd.DataFrame:
    """The claims table (see the module docstring) for a study's main trials (with `failed`/`learned`);
    `lesson_levels`: the lesson's first model's level of each factor (found from the trials' config values
    when not given); `tuned`: how the trials' learning rates were tuned per arm (study.spec.tune_each_arm),
    "" when they are the spec's fixed values."""
    lesson_levels = lesson_levels if lesson_levels is not None else first_model_levels(frame, factor_levels)
    rows = [row for check in lesson_checks() for row in evaluate(check, frame, factor_levels, lesson_levels, tuned)]
    return pd.DataFrame(rows, columns=COLUMNS)


def first_model_levels(frame: pd.DataFrame, factor_levels: dict[str, list[str]]) -> dict[str, str]:
    """Per factor, the first level whose defining values (the config fields constant within the level but not
    across the study) all match the lesson's first model; factors with no such level are left out."""
    out = {}
    varying = [c for c in LESSON_FIRST_MODEL if c in frame and frame[c].astype(str).nunique() > 1]
    for factor, labels in factor_levels.items():
        column = level_column(factor)
        for label in labels:
            trials = frame[frame[column] == label]
            defining = [c for c in varying if trials[c].astype(str).nunique() == 1]
            if trials.empty or not defining:
                continue
            if all(str(trials[c].iloc[0]) == str(LESSON_FIRST_MODEL[c]) for c in defining):
                out[factor] = label
                break
    return out


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _base_row(check: Check) -> dict:
    return {"claim": check.claim, "scope": "", "contrast": "", "condition": "", "measure": _measure(check),
            "metric": check.metric,
            "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "unit": "", "n": 0,
            "verdict": NOT_TESTABLE, "moderator": "", "holds": "", "reverses": "", "why": ""}


def evaluate(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]],
             lesson_levels: dict[str, str], tuned: str = "") -> list[dict]:
    """The claim's rows: one `not testable here` row, or its lesson's-condition and whole-grid readings."""
    row = _base_row(check)
    if check.factor not in factor_levels:
        return [{**row, "contrast": _nominal(check), "why": f"this study does not vary `{check.factor}`"}]
    if check.metric not in frame or frame[check.metric].isna().all():
        return [{**row, "contrast": _nominal(check), "why": "no gradient probes were recorded for these trials "
                                                              "(trained before the executors logged them)"}]
    special = {"optimizer": tuned_optimizer_levels(tuned) if tuned else optimizer_levels,
               "dropout": dropout_levels}.get(check.factor)
    levels, note, testable = (special(check, frame, factor_levels) if special
                              else plain_levels(check, frame, factor_levels[check.factor]))
    if levels is None:
        return [{**row, "contrast": _nominal(check), "why": note}]
    level, reference = levels
    row["contrast"] = f"{check.factor}: {level} vs {reference}"
    stated, fixed = {}, {}
    for name, (field_name, allowed) in check.stated.items():
        if name in factor_levels:
            stated[name] = [lv for lv in labels_of(frame, name, field_name, allowed) if lv in factor_levels[name]]
            if not stated[name]:
                return [{**row, "why": "the condition's levels were not run"}]
        elif field_name in frame and not frame[field_name].isin(allowed).any():
            runs = ", ".join(sorted({_text(v) for v in frame[field_name]}))
            return [{**row, "condition": f"{name}={'/'.join(_text(v) for v in allowed)}",
                     "why": f"the condition is not in this study: it runs `{field_name}` = {runs} only"}]
        elif field_name in frame:
            fixed[name] = sorted({_text(v) for v in frame[field_name]})
    notes = [note] if note else []
    if fixed:
        notes.append("the study fixes " + ", ".join(f"`{n}`" for n in fixed))
    if check.factor == "schedule":
        extra, acted = schedule_notes(frame, level)
        notes += extra + ([f"each schedule at its own tuned peak rate ({tuned})"] if tuned else [])
        testable = testable and acted
    keep = LEARNED if check.learners_only else None
    lesson_where = {**stated, **{f: [lesson_levels[f]] for f in factor_levels
                                 if f != check.factor and f in lesson_levels and f not in stated}}
    readings = [(LESSON, lesson_where), (GRID, stated)]
    if lesson_where == stated:  # the study varies nothing else: one reading is both
        readings = [(f"{LESSON} = {GRID}", stated)]
    rows = []
    for scope, where in readings:
        effect = within(frame, factor_levels, check.factor, level, reference, check.metric, where, keep=keep)
        shown = {**row, "scope": scope, "condition": _condition(where, fixed),
                 "diff": effect["diff"], "ci_low": effect["ci_low"], "ci_high": effect["ci_high"],
                 "unit": effect["unit"], "n": int(effect["blocks"]), "why": "; ".join(notes)}
        nothing = _nothing_to_rescue(check, frame, reference, where)
        if nothing:
            shown["why"] = "; ".join(filter(None, [shown["why"], nothing]))
        elif testable:
            shown["verdict"] = verdict(check.expected, effect["ci_low"], effect["ci_high"], _margin(check))
            if scope == GRID:
                shown.update(_depends(check, frame, factor_levels, level, reference, where, keep))
                more = shown.pop("why_more", "")
                if more:
                    shown["why"] = "; ".join(filter(None, [shown["why"], f"the sign also changes across {more}"]))
        rows.append(shown)
    return rows


def _nothing_to_rescue(check: Check, frame: pd.DataFrame, reference: str, where: dict[str, list[str]]) -> str:
    """A claim that a level prevents failures needs failures at the reference level to prevent."""
    if check.metric != FAILED or check.expected >= 0:
        return ""
    data = frame[frame[level_column(check.factor)] == reference]
    for name, allowed in where.items():
        data = data[data[level_column(name)].isin(allowed)]
    if data.empty or data[FAILED].sum() > 0:
        return ""
    return (f"no trial fails at {check.factor}={reference} here (0 of {len(data)}): nothing for "
            f"{check.factor} to make robust")


def _depends(check: Check, frame: pd.DataFrame, factor_levels: dict[str, list[str]], level: str, reference: str,
             where: dict[str, list[str]], keep: str | None) -> dict:
    """`depends on <moderator>` when the contrast's sub-effects within the moderator's levels lie on both sides
    of zero (each sub-effect's own 95% interval); the moderator with the widest spread is named."""
    found = []
    for moderator, levels in factor_levels.items():
        if moderator == check.factor or moderator in where:
            continue
        subs = {m: within(frame, factor_levels, check.factor, level, reference, check.metric,
                          {**where, moderator: [m]}, keep=keep) for m in levels}
        up = [m for m, e in subs.items() if e["ci_low"] > 0]
        down = [m for m, e in subs.items() if e["ci_high"] < 0]
        if up and down:
            effects = [e["diff"] for e in subs.values() if math.isfinite(e["diff"])]
            found.append((max(effects) - min(effects), moderator, up, down, subs))
    if not found:
        return {}
    _, moderator, up, down, subs = max(found, key=lambda item: item[0])
    holds, reverses = (up, down) if check.expected >= 0 else (down, up)

    def where_text(levels: list[str]) -> str:
        return "; ".join(f"{moderator}={m}: {100 * subs[m]['diff']:+.2f} pp [{100 * subs[m]['ci_low']:+.2f}, "
                         f"{100 * subs[m]['ci_high']:+.2f}]" for m in levels)
    others = [m for _, m, *_ in found if m != moderator]
    return {"verdict": f"depends on {moderator}", "moderator": moderator, "holds": where_text(holds),
            "reverses": where_text(reverses),
            **({"why_more": ", ".join(others)} if others else {})}


def _condition(where: dict[str, list[str]], fixed: dict[str, list[str]]) -> str:
    return ", ".join(f"{n}={'/'.join(v)}" for n, v in {**fixed, **where}.items())


def _margin(check: Check) -> float:
    return {FAILED: RATE_MARGIN, GRADIENT_RATIO: GRADIENT_MARGIN}.get(check.metric, ACCURACY_MARGIN)


def _nominal(check: Check) -> str:
    """The contrast as the claim names it, for a study that cannot run it."""
    def text(value: object) -> str:
        return "the largest rate" if value == "*" else _text(value)
    return f"{check.field}: {text(check.level)} vs {text(check.reference)}"


def verdict(expected: int, low: float, high: float, margin: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return NOT_TESTABLE
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
