"""Where the answer depends on the other choices: flagged sign changes, the strongest conditional
effects, small multiples of every contrast per moderator, and the strongest higher-order term."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.stats.conditional import strongest_conditional
from study.analysis.study_analysis import Analysis
from study.report import format as fmt
from study.report.figures.conditional_figures import conditional_small_multiples, higher_order_plot
from study.report.format import VAL_ACCURACY, Outcome
from study.report.section import ReportContext

STRONGEST = 6


def sign_change_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    conditional = result.conditional
    rows = []
    for _, row in result.sign_changes.iterrows():
        sub = conditional[(conditional["factor"] == row["factor"]) & (conditional["level"] == row["level"])
                          & (conditional["moderator"] == row["moderator"])].set_index("moderator_level")

        def where(levels: list[str]) -> str:
            return "; ".join(f"{row['moderator']}={m}: " + outcome.effect(sub.loc[m, "effect"], sub.loc[m, "ci_low"],
                                                                          sub.loc[m, "ci_high"]) for m in levels)
        rows.append({"contrast": f"{row['factor']}: {row['level']} vs {row['reference']}",
                     "helps at": where(row["holds"]), "hurts at": where(row["reverses"]),
                     "after Holm": "reverses" if row["holm"] else "unadjusted only"})
    return pd.DataFrame(rows)


def strongest_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    rows = []
    for _, row in strongest_conditional(result.conditional, STRONGEST).iterrows():
        rows.append({"contrast": f"{row['factor']}: {row['level']} vs {row['reference']}",
                     "within": f"{row['moderator']}={row['moderator_level']}",
                     f"Δ {outcome.short} [95% CI]": outcome.effect(row["effect"], row["ci_low"], row["ci_high"]),
                     "p (Holm)": fmt.p_value(row["p_holm"]), "unit": f"{int(row['blocks'])} {row['unit']}"})
    return pd.DataFrame(rows)


def higher_order_text(result: Analysis, out: Path, outcome: Outcome = VAL_ACCURACY) -> str:
    term = result.higher_term
    if term is None or result.higher_cells.empty:
        return ""
    members = tuple(term["factors"])
    result.higher_contrasts.to_csv(out / "tables" / "strongest_term.csv", index=False)
    figure = higher_order_plot(result.higher_cells, members, float(term["share"]),
                               out / "figures" / "higher_order_term.png")
    contrasts = result.higher_contrasts.dropna(subset=["effect"])
    widest = contrasts.loc[contrasts["effect"].abs().idxmax()] if not contrasts.empty else None
    text = (f"### The strongest higher-order term: {term['term']}\n\n{fmt.share(term['share'])} of the variance "
            f"(Holm p {fmt.p_value(term['p_holm'])}), more than the decomposition's grouped rows show.")
    if widest is not None:
        text += (f" Inside it, the largest effect is `{widest['factor']}={widest['level']}` vs "
                 f"`{widest['reference']}` at {widest['condition']}: "
                 f"{outcome.effect(widest['effect'], widest['ci_low'], widest['ci_high'])} "
                 f"({int(widest['blocks'])} {widest['unit']}). Every member's effect in every cell: "
                 "`tables/strongest_term.csv`.")
    return text + f"\n\n![{term['term']}](figures/{figure.name})\n"


def conditional_section(result: Analysis, out: Path, outcome: Outcome = VAL_ACCURACY) -> str:
    if result.conditional.empty:
        return ""
    result.conditional.to_csv(out / "tables" / "conditional_effects.csv", index=False)
    figure = conditional_small_multiples(result.conditional, out / "figures" / "conditional_effects.png")
    flagged = result.sign_changes
    parts = ["## Where the answer depends on the other choices\n",
             "Each contrast measured within each level of every other factor (the moderator), by block over the "
             f"remaining factors: {len(result.conditional)} sub-effects in `tables/conditional_effects.csv`. A "
             "**sign change** (a qualitative interaction) is flagged when two sub-effects' 95% intervals lie on "
             "opposite sides of zero; `after Holm` says whether both also hold after Holm's correction over all "
             "sub-effects. Where the sign changes, the whole-grid average answers no one's question: read the "
             "condition that is yours.\n"]
    if flagged.empty:
        parts.append("No contrast changes sign across a moderator.\n")
    else:
        parts.append(fmt.markdown(sign_change_table(result, outcome), parse_numbers=False) + "\n")
    parts.append("The sub-effects that differ most from their contrast's average over the moderator's levels:\n\n"
                 + fmt.markdown(strongest_table(result, outcome), parse_numbers=False) + "\n")
    parts.append(f"![conditional effects](figures/{figure.name})\n")
    parts.append(higher_order_text(result, out, outcome))
    return "\n".join(p for p in parts if p)


class ConditionalSection:
    def render(self, ctx: ReportContext) -> str:
        return conditional_section(ctx.result, ctx.out) if ctx.result else ""
