"""The lesson's claims, one row each, with the within-condition contrast that tests it and a verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.gradients import GRADIENT_RATIO
from study.analysis.study_analysis import PRIMARY, Analysis
from study.lesson.claims import ACCURACY_MARGIN, RATE_MARGIN
from study.report import format as fmt
from study.report.latex import write_latex
from study.report.section import ReportContext


def _log10_effect(diff: float, low: float, high: float) -> str:
    """A difference of log10 ratios, with the factor it multiplies the ratio by."""
    return f"{diff:+.2f} log10 [{low:+.2f}, {high:+.2f}] (x{10 ** diff:.3g})"


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    rows, previous = [], None
    for _, row in claims.iterrows():
        metric = "failed" if row["measure"].startswith("share of trials") else PRIMARY
        tested = row["n"] > 0
        notes = [row["why"]] if row["why"] else []
        if row["holds"]:
            notes.insert(0, f"holds at {row['holds']}; reverses at {row['reverses']}")
        rows.append({"claim": row["claim"] if row["claim"] != previous else "", "reading": row["scope"],
                     "contrast": row["contrast"], "condition": row["condition"] or "(none)",
                     "measure": row["measure"],
                     "Δ [95% CI]": ("" if not tested else _log10_effect(row["diff"], row["ci_low"], row["ci_high"])
                                    if row.get("metric") == GRADIENT_RATIO
                                    else fmt.effect(row["diff"], row["ci_low"], row["ci_high"], metric)),
                     "unit": f"{int(row['n'])} {row['unit']}" if tested else "", "verdict": row["verdict"],
                     "where it holds and reverses; why": "; ".join(notes)})
        previous = row["claim"]
    return pd.DataFrame(rows)


def claims_section(result: Analysis, out: Path) -> str:
    if result.claims.empty:
        return ""
    result.claims.to_csv(out / "tables" / "claims.csv", index=False)
    absent = result.claims["why"].str.startswith("this study does not vary")
    shown = result.claims[~absent]
    write_latex(claims_table(shown), out / "tables" / "claims.tex")
    folded = ""
    if absent.any():
        missing = result.claims[absent].groupby("claim", sort=False)["why"].first()
        folded = ("\nNot in this study, because it does not vary the factor (rows in `tables/claims.csv`): "
                  + "; ".join(f"{claim} ({why.removeprefix('this study does not vary ')})"
                              for claim, why in missing.items()) + ".\n")
    return ("## The lesson's claims\n\n"
            "Each statement of the lesson, read twice so that no claim is conditioned in one row and not in "
            "another: **lesson's condition** (every other factor at the lesson's first model's level: ReLU, "
            "Xavier, no batch norm, no dropout, SGD, constant rate, unless the claim states its own condition; one "
            "block, so the unit is the seed) and **whole grid** (only the claim's own condition; the unit is the "
            "block). Δ: level - reference with a 95% interval (unadjusted, one per claim). Verdicts: `supported` "
            "(the interval lies on the claimed side of zero), `contradicted` (the other side), `no effect` (a "
            f"claimed gain within ±{fmt.points(ACCURACY_MARGIN)}, or ±{fmt.points(RATE_MARGIN)} of failure "
            "rate), `inconclusive` (covers zero and reaches past that margin), **`depends on <factor>`** (over the "
            "whole grid, the contrast's effects within that factor's levels lie on both sides of zero, each by its "
            "own 95% interval: more seeds cannot make it one verdict; the row says where it holds and where it "
            "reverses), or `not testable here` with the reason (a level the study lacks, a precondition that "
            "does not hold: overfitting for dropout to regularise, failures for a remedy to rescue, one untuned "
            "learning rate per optimizer, a schedule that never acted). A verdict holds for this study's budget "
            "and network only (see the spec).\n\n"
            + (fmt.markdown(claims_table(shown), parse_numbers=False) + "\n" if len(shown) else "") + folded)


class ClaimsSection:
    """The lesson's claims (the lesson companion's section)."""

    def render(self, ctx: ReportContext) -> str:
        return claims_section(ctx.result, ctx.out) if ctx.result and not ctx.result.claims.empty else ""
