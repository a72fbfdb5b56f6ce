"""The report's first screen: what to pick (the top group), what is settled near the top, what still
matters in the region a practitioner would use, and the forest plot of every effect there and over the
whole grid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.stats.evaluation import binomial_sd, one_image, too_small
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.figures.forest import forest_plot
from study.report.format import VAL_ACCURACY, Outcome
from study.report.section import ReportContext

SHOWN_BELOW_GROUP = 2  # configs shown after the top group, so a reader sees where it ends


def config_text(row: pd.Series, factors: list[str]) -> str:
    return ", ".join(f"{f}={row[f]}" for f in factors) or "(the one config)"


def top_group_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    table = result.top.table
    shown = table.head(result.top.size + SHOWN_BELOW_GROUP)
    rows = []
    for _, row in shown.iterrows():
        rows.append({"rank": int(row["rank"]), "config": config_text(row, result.top.factors),
                     "seeds": int(row["n"]), outcome.label: outcome.value(row["mean"]),
                     "Δ to the best [95% CI, paired by seed]": (
                         "" if row["rank"] == 1 else outcome.effect(row["diff_to_best"], row["diff_ci_low"],
                                                                    row["diff_ci_high"])),
                     "p (a rival is better; Holm)": "" if row["rank"] == 1 else (
                         f"{fmt.p_value(row['p_holm'])} (rank {int(row['beaten_by'])})"),
                     "every seed learns": "yes" if row["all_learn"] else "no",
                     "top group": "yes" if row["in_top_group"] else "no"})
    return pd.DataFrame(rows)


def settled_table(result: Analysis) -> pd.DataFrame:
    rows = []
    for _, row in result.top.settled.iterrows():
        levels = row["levels_in_top_group"]
        if row["verdict"] == "settled":
            text = f"settled: {levels[0]}"
        elif row["verdict"] == "open":
            text = "does not matter between " + ", ".join(levels)
        else:
            text = "n/a"
        rows.append({"factor": row["factor"], "near the top": text})
    return pd.DataFrame(rows)


def noise_floor(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> str:
    """The validation split's sampling error at the best config's accuracy, and a warning for a small split."""
    size = result.rule.validation_size
    if size <= 0 or result.top is None or result.top.table.empty or not outcome.percent:
        return ""
    best = float(result.top.table["mean"].iloc[0])
    text = (f"Noise floor: the validation split has {size:,} images, so an accuracy near "
            f"{fmt.value(best, PRIMARY)} carries a sampling SD of {fmt.points(binomial_sd(best, size))} on top of "
            "the seeds' scatter (the seeds are scored on the same images, so their scatter does not contain it); "
            "the leaderboard's intervals include it.")
    if too_small(size):
        text += (f" **Warning: one validation image moves accuracy by {fmt.points(one_image(size))}**, so "
                 "differences of that size are single images; use a larger validation split before reading them.")
    return text


def region_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    rows = []
    for _, row in result.region_effects.iterrows():
        rows.append({"factor": row["factor"], "level vs reference": f"{row['level']} vs {row['reference']}",
                     f"Δ {outcome.short} [95% CI, unadjusted]": outcome.effect(row["diff"], row["ci_low"],
                                                                              row["ci_high"]),
                     "simultaneous 95% CI": outcome.interval(row["ci_low_adj"], row["ci_high_adj"], True),
                     "p (Holm)": fmt.p_value(row["p_holm"]), "verdict": row["verdict"],
                     "unit": f"{int(row['blocks'])} {row['unit']}"})
    return pd.DataFrame(rows)


def region_text(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> str:
    region = result.region
    if region is None:
        return ("**The region near the top**: none. No config learns on every seed, so there is no sub-grid a "
                "practitioner would use in which to measure the effects again.\n")
    if region.how == "spec":
        how = "the spec's `region:`"
    else:
        how = (f"found from the data: the configs whose every seed learns and whose mean lies within "
               f"{outcome.size(region.margin)} of the best ({region.near_top} configs), each factor kept at the "
               "levels they use" + (", then " + ", ".join(f"`{d}`" for d in region.drops) + " dropped so that "
                                     "every config in it learns on every seed" if region.drops else ""))
    text = (f"**The region near the top** ({how}): {region.describe()}; {region.configs} configs. Every effect "
            "below is measured inside it, by block, as over the whole grid.")
    if result.region_effects.empty:
        return text + " No factor varies inside it, so there is nothing left to compare there.\n"
    ranking = result.region_ranking
    if not ranking.empty:
        text += (" Importance inside it (total effect): " + ", ".join(
            f"`{r['factor']}` {fmt.share(r['total_share'])}" for _, r in ranking.iterrows()) + ".")
    return text + "\n\n" + fmt.markdown(region_table(result, outcome), parse_numbers=False) + "\n"


def advice_section(result: Analysis, out: Path, outcome: Outcome = VAL_ACCURACY) -> str:
    if result.top is None or result.top.table.empty or not result.factors:  # one config: nothing to pick from
        return ""
    top = result.top
    top.table.to_csv(out / "tables" / "top_group.csv", index=False)
    top.settled.assign(levels_in_top_group=top.settled["levels_in_top_group"].map("/".join)).to_csv(
        out / "tables" / "top_group_factors.csv", index=False)
    seeds = ("the confirmed configs on their confirm seeds (which played no part in choosing them)"
             if top.seeds == "confirm" else "every config on the main seeds")
    size = top.size
    lead = (f"**{size} configs cannot be told apart from the best** by the data, so the study names no single "
            "winner: pick any of them." if size > 1 else
            "**One config is best**: every other candidate is worse after the correction.")
    parts = ["## What to pick\n",
             f"{lead} Among {seeds}: a config stays in the top group unless another config is shown better than "
             "it (a one-sided t test of their difference paired by seed, Holm-corrected over its rivals), and only "
             "if every seed learns. This subset selection keeps the truly best config with probability at least "
             "95% whichever config the seeds happen to rank first (testing every config against the observed best "
             "would not: the observed best is also the luckiest). Δ to the best is shown for reading; the full "
             "table, with a bootstrap share of wins over resampled seeds (a measure of how stable the ranking is on "
             "these seeds, not a probability of being truly best), is `tables/top_group.csv`.\n",
             fmt.markdown(top_group_table(result, outcome), parse_numbers=False) + "\n"]
    floor = noise_floor(result, outcome)
    if floor:
        parts.append(floor + "\n")
    if result.factors:
        parts.append("Per factor, near the top (the levels found in the top group):\n\n"
                     + fmt.markdown(settled_table(result), parse_numbers=False) + "\n")
        parts.append(region_text(result, outcome))
        parts.append(_forest(result, out, outcome))
    return "\n".join(p for p in parts if p)


def _forest(result: Analysis, out: Path, outcome: Outcome) -> str:
    if result.effects[PRIMARY].empty:
        return ""
    if not result.region_effects.empty:
        result.region_effects.to_csv(out / "tables" / "region_effects.csv", index=False)
    region = result.region_effects if result.region is not None and not result.region_effects.empty else None
    failing = result.rule.majority_rate > float("-inf") and not result.failures.empty
    figure = forest_plot(result.effects[PRIMARY], result.learners[PRIMARY] if failing else None,
                         result.failures if failing else None, out / "figures" / "forest.png", region, outcome)
    return (f"![every effect](figures/{figure.name})\n\n"
            "Each row: a level against its factor's reference. Blue: over the whole grid, all trials; green: the "
            "whole grid among trials that learn; orange (own scale): inside the region near the top (no point: "
            "the factor is fixed there; inside the region a factor's reference is its first level kept); red: on "
            "the share of trials that fail. Thick bars: each effect's own 95% interval "
            "(unadjusted); thin: simultaneous 95% intervals over the table (Bonferroni), which agree with the "
            "Holm-corrected verdicts. The unit is the block (a combination of the other factors' levels, seeds "
            "averaged first).\n")


class AdviceSection:
    def render(self, ctx: ReportContext) -> str:
        return advice_section(ctx.result, ctx.out) if ctx.result else ""
