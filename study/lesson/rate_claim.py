"""The lesson's claim that batch normalisation allows a higher learning rate, read off the tuned arms (a study with
`tune_each_arm`, study.analysis.fair): the one claim the main trials at fixed learning rates cannot test."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.claim_table import COLUMNS as CLAIM_COLUMNS
from study.analysis.claim_table import NOT_TESTABLE
from study.analysis.fair import FairAnalysis
from study.spec.study_spec import StudySpec

RATE_CLAIM = "Batch normalisation allows a higher learning rate"


def rate_claim(spec: StudySpec, fair: FairAnalysis | None, factor_levels: dict[str, list[str]]) -> pd.DataFrame:
    """The claim's row (study.analysis.claim_table.COLUMNS): with tuned arms, batch norm's tuned learning rate
    against the same arm's without, pair by pair of arms that differ in batch norm only."""
    row = {c: "" for c in CLAIM_COLUMNS} | {"claim": RATE_CLAIM, "measure": "tuned learning rate", "diff": math.nan,
                                       "ci_low": math.nan, "ci_high": math.nan, "n": 0,
                                       "verdict": NOT_TESTABLE, "contrast": "batch_norm: true vs false"}
    if "batch_norm" not in factor_levels:
        return pd.DataFrame([{**row, "why": "this study does not vary `batch_norm`"}], columns=CLAIM_COLUMNS)
    if spec.tune_each_arm is None or "learning_rate" not in spec.tune_each_arm.space:
        return pd.DataFrame([{**row, "why": "one untuned learning rate per arm: tune each arm's learning rate "
                                            "(`tune_each_arm`) to test it"}], columns=CLAIM_COLUMNS)
    factors = list(fair.plan.arms[0].levels) if fair is not None and fair.plan.arms else []
    if fair is None or "batch_norm" not in factors or not fair.plan.complete:
        why = ("batch norm is not one of `tune_each_arm.arms`: its levels share one tuned rate"
               if fair is not None and fair.plan.arms and "batch_norm" not in factors else
               "the arms are not all tuned yet")
        return pd.DataFrame([{**row, "why": why}], columns=CLAIM_COLUMNS)
    return pd.DataFrame([{**row, **_rate_verdict(fair.arms, [f for f in factors if f != "batch_norm"])}],
                        columns=CLAIM_COLUMNS)


def _rate_verdict(arms: pd.DataFrame, others: list[str]) -> dict:
    """Per pair: higher when BN's near-best range lies wholly above the other's, lower when wholly below."""
    higher, lower, overlap, ratios = [], [], [], []
    for key, pair in arms.groupby(others, sort=False, dropna=False) if others else [((), arms)]:
        with_bn, without = pair[pair["batch_norm"] == "true"], pair[pair["batch_norm"] == "false"]
        if with_bn.empty or without.empty:
            continue
        a, b = with_bn.iloc[0], without.iloc[0]
        name = ", ".join(f"{c}={v}" for c, v in zip(others, key if isinstance(key, tuple) else (key,))) or "all"
        text = f"{name}: {a['learning_rate']:.3g} vs {b['learning_rate']:.3g}"
        ratios.append(math.log10(a["learning_rate"] / b["learning_rate"]))
        if a["near_low_learning_rate"] > b["near_high_learning_rate"]:
            higher.append(text)
        elif a["near_high_learning_rate"] < b["near_low_learning_rate"]:
            lower.append(text)
        else:
            overlap.append(text)
    if not ratios:
        return {"why": "no two arms differ in batch norm only"}
    if higher and not lower and len(higher) >= len(overlap):
        verdict = "supported"
    elif lower and not higher and len(lower) >= len(overlap):
        verdict = "contradicted"
    elif not higher and not lower and all(r == 0 for r in ratios):
        verdict = "no effect"
    else:
        verdict = "inconclusive"
    mean = sum(ratios) / len(ratios)
    why = (f"tuned rate with BN vs without, per pair of arms (higher/lower: the near-best ranges do not overlap): "
           f"{len(higher)} higher, {len(lower)} lower, {len(overlap)} overlapping; mean ratio {10 ** mean:.3g}x")
    return {"scope": "tuned arms", "condition": "each arm at its own tuned rate", "unit": "arm pairs",
            "verdict": verdict, "holds": "; ".join(higher), "reverses": "; ".join(lower),
            "why": why + (f" (overlapping: {'; '.join(overlap)})" if overlap else "")}

