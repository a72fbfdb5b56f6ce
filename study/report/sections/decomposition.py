"""The variance decomposition section: the saturated factorial, the total-effect ranking, interaction heatmaps."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study.analysis.stats.factorial import cell_means, strongest_interactions
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.figures import study_figures as figures
from study.report.format import VAL_ACCURACY, Outcome
from study.report.section import ReportContext

HEATMAPS = 3


def order_shares(result: Analysis) -> dict[str, float]:
    """Share of variance by kind of term: main effects, two-way, 3-way and higher, seed noise."""
    terms = result.decomposition.terms
    return {"main effects": float(terms.loc[terms["order"] == 1, "share"].sum()),
            "two-way interactions": float(terms.loc[terms["order"] == 2, "share"].sum()),
            "3-way and higher interactions": float(terms.loc[terms["order"] > 2, "share"].sum()),
            "seed noise": float(result.decomposition.seed_noise["share"])}


def terms_table(result: Analysis) -> pd.DataFrame:
    terms = result.terms
    return pd.DataFrame({
        "term": terms["term"], "kind": terms["kind"], "terms": terms["terms"].astype(int),
        "df": terms["df"].astype(int), "share of variance": terms["share"].map(fmt.share),
        "p (Holm, smallest)": terms["p_holm"].map(lambda p: fmt.p_value(p) if math.isfinite(p) else ""),
        "significant terms": [f"{int(s)} of {int(n)}" if n else "" for s, n in zip(terms["significant"],
                                                                                   terms["terms"])],
    })


def ranking_table(result: Analysis) -> pd.DataFrame:
    ranking = result.ranking
    return pd.DataFrame({
        "rank": ranking["rank"], "factor": ranking["factor"],
        "total effect": ranking["total_share"].map(fmt.share),
        "main effect": ranking["main_share"].map(fmt.share),
        "in two-way terms": ranking["two_way_share"].map(fmt.share),
        "in 3-way and higher terms": ranking["higher_share"].map(fmt.share),
    })


def interactions_section(result: Analysis, out: Path, outcome: Outcome = VAL_ACCURACY) -> str:
    head = "## Interactions and importance\n"
    decomposition = result.decomposition
    if decomposition.empty:
        return head + f"\nNot computed: {decomposition.note}.\n"
    table = decomposition.terms
    table.assign(factors=table["factors"].map(" x ".join)).to_csv(out / "tables" / "decomposition.csv", index=False)
    result.terms.to_csv(out / "tables" / "decomposition_grouped.csv", index=False)
    result.ranking.to_csv(out / "tables" / "importance.csv", index=False)
    noise = decomposition.seed_noise
    bars = figures.importance_bars(result.ranking, out / "figures" / "importance.png", outcome.label)
    parts = [head,
             f"Saturated factorial decomposition of {outcome.label} over {decomposition.configs} configs and "
             f"{decomposition.n} trials: every main effect and every interaction of every order gets its sum of "
             "squares from the config means (the orthogonal decomposition of a complete factorial), and what is "
             "left is **seed noise**, the scatter of the seeds within each config "
             f"({noise['df']} degrees of freedom, SD {outcome.size(noise['sd'])}). Each term is F-tested against "
             "that seed noise, and the p-values are Holm-corrected over all "
             f"{len(table)} terms. Share of variance = a term's sum of squares / the total; main effects, "
             "interactions of every order and seed noise add up to 100%. Below: each main effect and two-way "
             "term, the 3-way and higher terms grouped by order (with their largest member), then seed noise. "
             + (f"Note: {decomposition.note}. " if decomposition.note else "")
             + "Every term: `tables/decomposition.csv`.\n",
             fmt.markdown(terms_table(result), parse_numbers=False) + "\n",
             "By kind of term:\n\n" + fmt.markdown(pd.DataFrame([{"terms": name, "share of variance": fmt.share(share)}
                                                                for name, share in order_shares(result).items()]),
                                                  parse_numbers=False) + "\n",
             "### Importance ranking\n\nFactors ranked by their **total effect**: the share of variance of every "
             "term the factor takes part in, of any order (the variance-based total effect of Sobol and "
             "Saltelli). It counts interactions: a factor that matters only together with another ranks by "
             "that. A term counts for each factor in it, so the totals add up to more than 100%. (Not Optuna's "
             "fANOVA: on a complete grid the decomposition is exact and needs no surrogate model.)\n",
             fmt.markdown(ranking_table(result), parse_numbers=False) + "\n", f"![importance](figures/{bars.name})\n"]
    pairs = strongest_interactions(decomposition, k=HEATMAPS)
    if pairs:
        parts.append(f"### The {len(pairs)} strongest two-way interactions\n\nMean {outcome.label}"
                     f"{' (%)' if outcome.percent else ''} for each pair "
                     "of levels, all other factors and seeds pooled. Without interaction, two rows would differ by "
                     "the same amount in every column.\n")
        shares = table.set_index("term")["share"]
        for a, b in pairs:
            cells = cell_means(result.frame, a, b, PRIMARY, result.factor_levels[a], result.factor_levels[b])
            cells.to_csv(out / "tables" / f"interaction_{a}_x_{b}.csv")
            figure = figures.interaction_heatmap(cells, a, b, outcome.label, float(shares[f"{a} x {b}"]),
                                                 out / "figures" / f"interaction_{a}_x_{b}.png", outcome.percent)
            parts.append(f"![{a} x {b}](figures/{figure.name})\n")
    return "\n".join(parts)


class InteractionsSection:
    def render(self, ctx: ReportContext) -> str:
        return interactions_section(ctx.result, ctx.out) if ctx.result else ""
