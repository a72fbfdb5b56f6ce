"""The lesson's claims, one row each, with the within-condition contrast that tests it and a verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.claims import ACCURACY_MARGIN, RATE_MARGIN
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.latex import write_latex
from study.report.section import ReportContext


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in claims.iterrows():
        metric = "failed" if row["measure"].startswith("share of trials") else PRIMARY
        tested = row["n"] > 0
        rows.append({"claim": row["claim"], "contrast (within condition)": row["contrast"], "measure": row["measure"],
                     "Δ [95% CI]": fmt.effect(row["diff"], row["ci_low"], row["ci_high"], metric) if tested else "",
                     "unit": f"{int(row['n'])} {row['unit']}" if tested else "", "verdict": row["verdict"],
                     "why": row["why"]})
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
            "Each statement of the lesson as a row: the contrast that tests it *inside the condition where the "
            "lesson makes it* (e.g. ReLU vs sigmoid under SGD with Xavier/He and no batch norm), its difference "
            "(level - reference) with a 95% interval whose unit is the block (combinations of the other factors "
            "left free, seeds averaged first; the seed when only one block remains), and a verdict: `supported` "
            "(the interval lies on the claimed side of zero), `contradicted` (on the other side), `no effect` (a "
            f"claimed gain whose interval lies within ±{fmt.points(ACCURACY_MARGIN)}, or ±"
            f"{fmt.points(RATE_MARGIN)} of failure rate), `inconclusive` (the interval covers zero and reaches "
            "past that margin), or `not testable here` with the reason (a level the study lacks, a precondition "
            "that does not hold, such as overfitting for dropout to regularise, or one untuned learning rate "
            "per optimizer). Each verdict reads its claim's own interval, not corrected for the number of claims (the "
            "effects tables below are Holm-corrected). A verdict holds for this study's budget and network only "
            "(see the spec).\n\n"
            + (fmt.markdown(claims_table(shown), parse_numbers=False) + "\n" if len(shown) else "") + folded)


class ClaimsSection:
    """The lesson's claims: only in lesson studies (the lesson's model on MNIST)."""

    def render(self, ctx: ReportContext) -> str:
        return claims_section(ctx.result, ctx.out) if ctx.result and ctx.lesson else ""
