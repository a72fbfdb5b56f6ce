"""The sections of an analysed experiment's report that show results: every effect at a glance, the effects
table, runs that did not learn, the decomposition and the leaderboard, in the metric's own name and units.

The tables are the study report's own (study.report.sections), given the outcome to print."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from study.analysis.stats.curves import seed_bands
from study.analysis.study_analysis import PRIMARY
from study.report import format as fmt
from study.report.figures import study_figures as figures
from study.report.format import Outcome
from study.report.latex import write_latex
from study.report.sections.decomposition import interactions_section
from study.report.sections.effects import effects_table, learning_table
from study.report.sections.external_about import ExternalContext
from study.report.sections.results import leaderboard_table

LEVELS_SHOWN = 12  # levels a factor may have for its learning-curve figure


def effects_section(ctx: ExternalContext) -> str:
    x, out = ctx.analysis, ctx.out
    result = x.result
    if not result.factors:
        return "## Effects of each factor\n\nNo factor has two or more levels: nothing to compare.\n"
    result.effects[PRIMARY].to_csv(out / "tables" / "effects.csv", index=False)
    table = effects_table(result, ctx.outcome)
    write_latex(table, out / "tables" / "effects.tex")
    sign = (f" Δ is in `{ctx.outcome.label}`: a positive Δ means the level lowered `{x.spec.metric}`."
            if x.spec.lower_is_better else "")
    one_block = (result.effects[PRIMARY]["unit"] == "seeds").any()
    power = result.power
    parts = ["## Effects of each factor\n",
             "Each level against its factor's reference level. **Unit: the block**, a combination of the other "
             "factors' levels: within a block the two levels' runs are paired by seed and their differences "
             "averaged over seeds, giving one difference per block. Δ is the mean over blocks with its 95% "
             "Student-t interval over blocks; `median Δ` the median block; `seed-noise CI` the same mean with the "
             "blocks held fixed (only the seeds' scatter within blocks counts); P(level > ref) the share of blocks "
             "the level wins (ties half) with its Wilson interval; p from the two-sided t test over blocks, "
             "Holm-corrected over the table; `detectable` the smallest true effect this many blocks detect with "
             "80% power. `verdict`: `higher`/`lower` when the corrected test is significant; `no-op` or `mostly "
             "no-op` when the level left the metric bit-identical in all or at least half of its pairs; else `not "
             f"significant`.{sign}"
             + (" One factor varies, so there is one block: the unit is the seed." if one_block else "") + "\n",
             fmt.markdown(table, parse_numbers=False) + "\n",
             f"Seed noise: SD over seeds {ctx.outcome.size(power['top_sd'])} (the best configs pooled), median SD "
             f"over all configs {ctx.outcome.size(power['median_sd'])}; with {int(power['seeds'])} seeds per "
             f"config, two configs are told apart with 80% power from a difference of "
             f"{ctx.outcome.size(power['two_configs'])}.\n"]
    parts.append(_curves(ctx))
    return "\n".join(parts)


def _curves(ctx: ExternalContext) -> str:
    x = ctx.analysis
    if x.curves.empty:
        return ""
    metric = x.spec.metric
    parts = [f"### `{metric}` per step, per level\n\nPer seed, the mean over the runs at a level; line = mean over "
             f"seeds, band = min..max over seeds (`{metric}` as logged, not negated).\n"]
    for factor, labels in x.result.factor_levels.items():
        if len(labels) > LEVELS_SHOWN:
            continue
        bands = {metric: seed_bands(x.curves, x.result.frame, factor, metric)}
        figure = figures.seed_band_curves(bands, factor, labels, ctx.out / "figures" / f"curves_{factor}.png")
        parts.append(f"![{factor}](figures/{figure.name})\n")
    return "\n".join(parts)


def failures_section(ctx: ExternalContext) -> str:
    x, out = ctx.analysis, ctx.out
    spec, result = x.spec, x.result
    if spec.chance is None or not result.factors:
        return ""
    frame, rule = result.frame, result.rule
    failed = int(frame["failed"].sum())
    bound = (f"`{spec.metric}` at or above {fmt.value(spec.chance - rule.margin, ctx.outcome.kind)} (chance "
             f"{spec.chance} minus the margin {rule.margin})" if spec.lower_is_better else
             f"`{spec.metric}` at or below {ctx.outcome.value(rule.threshold)} (chance {spec.chance} plus the margin "
             f"{rule.margin})")
    for name, table in (("effects_learners", result.learners[PRIMARY]), ("effects_failure_rate", result.failures)):
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
    by_level = pd.DataFrame({
        "factor": result.failure_levels["factor"], "level": result.failure_levels["level"],
        "did not learn": [f"{int(f)} of {int(n)}" for f, n in zip(result.failure_levels["failed"],
                                                                 result.failure_levels["trials"])]})
    return ("## Runs that did not learn\n\n"
            f"**{failed} of {len(frame)} runs did not learn**: {bound}. Such a run is a different outcome from one "
            "that learned less, so each level's effect on the share of runs that did not learn (by block) stands "
            "beside its effect among runs that learned (only seed pairs where both learned).\n\n"
            + fmt.markdown(learning_table(result, ctx.outcome), parse_numbers=False) + "\n\nPer level:\n\n"
            + fmt.markdown(by_level, parse_numbers=False) + "\n")


def decomposition_section(ctx: ExternalContext) -> str:
    return interactions_section(ctx.analysis.result, ctx.out, ctx.outcome) if ctx.analysis.result.factors else ""


def leaderboard_section(ctx: ExternalContext) -> str:
    x, out = ctx.analysis, ctx.out
    configs = x.result.configs
    configs.to_csv(out / "tables" / "leaderboard.csv", index=False)
    if x.spec.lower_is_better:  # a config's mean needs no sign to rank by: shown as the metric itself
        raw = Outcome(label=x.spec.metric, short=x.spec.metric, percent=False)
        table = leaderboard_table(replace(x.result, configs=_negated(configs)), raw)
    else:
        table = leaderboard_table(x.result, ctx.outcome)
    if x.spec.chance is None:
        table = table.drop(columns="seeds that fail")
    write_latex(table, out / "tables" / "leaderboard.tex")
    more = (f" The top {len(table)} of {len(configs)} configs; all in `tables/leaderboard.csv`."
            if len(configs) > len(table) else "")
    best = "lowest" if x.spec.lower_is_better else "highest"
    shown = x.spec.metric if x.spec.lower_is_better else ctx.outcome.label
    return ("## Leaderboard\n\n"
            f"Per config: the mean `{shown}` over its seeds with a 95% Student-t interval (the unit is "
            f"the seed), {best} `{x.spec.metric}` first. The best config was picked on the runs that measure it, so "
            f"its mean is optimistic; to confirm it, run the top configs again on new seeds.{more}\n\n"
            + fmt.markdown(table, parse_numbers=False) + "\n")


def _negated(configs: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's means and intervals of the analysed (negated) outcome back in the metric's own sign."""
    out = configs.copy()
    mean, low, high = (f"{PRIMARY}_{part}" for part in ("mean", "ci_low", "ci_high"))
    out[mean], out[low], out[high] = -configs[mean], -configs[high], -configs[low]
    out["selection_mean"] = -configs["selection_mean"]
    return out
