"""The effects sections: the opening forest plot, effects by block, learning vs accuracy, no-ops, power."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from study.analysis.levels import level_summary
from study.analysis.stats.curves import seed_bands
from study.analysis.stats.noop import schedule_factors
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.figures import study_figures as figures
from study.report.format import VAL_ACCURACY, Outcome
from study.report.latex import write_latex
from study.report.section import ReportContext

CURVE_METRICS = ("val_accuracy", "val_loss")
FAILED = "failed"


def label(row: pd.Series) -> str:
    return f"{row['level']} vs {row['reference']}"


def units(row: pd.Series) -> str:
    return f"{int(row['blocks'])} {row['unit']}"


def effects_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    """The README's main effects table: val accuracy (or another `outcome`), every trial, by block."""
    rows = []
    for _, v in result.effects[PRIMARY].iterrows():
        rows.append({
            "factor": v["factor"], "level vs reference": label(v), "unit": units(v),
            f"Δ {outcome.short} [95% CI]": outcome.effect(v["diff"], v["ci_low"], v["ci_high"]),
            "median Δ": outcome.delta(v["median"]),
            "seed-noise CI": outcome.interval(v["seed_ci_low"], v["seed_ci_high"], True),
            "P(level > ref) [95% CI]": f"{fmt.probability(v['p_improvement'])} "
                                       f"[{fmt.probability(v['p_improvement_low'])}, "
                                       f"{fmt.probability(v['p_improvement_high'])}]"
                                       + (f", {int(v['tied_blocks'])} tied" if v["tied_blocks"] else ""),
            "p (Holm)": fmt.p_value(v["p_holm"]), "verdict": v["verdict"],
            "detectable (80% power)": outcome.size(v["detectable"]),
        })
    return pd.DataFrame(rows)


def learning_table(result: Analysis, outcome: Outcome = VAL_ACCURACY) -> pd.DataFrame:
    """Learning vs accuracy: the failure-rate effect and the effect among learners beside the pooled one."""
    rows = []
    for (_, v), (_, f), (_, lr) in zip(result.effects[PRIMARY].iterrows(), result.failures.iterrows(),
                                       result.learners[PRIMARY].iterrows()):
        rows.append({
            "factor": v["factor"], "level vs reference": label(v),
            "Δ failure rate [95% CI]": fmt.effect(f["diff"], f["ci_low"], f["ci_high"], FAILED),
            "p (Holm)": fmt.p_value(f["p_holm"]),
            f"Δ {outcome.short} among learners [95% CI]": outcome.effect(lr["diff"], lr["ci_low"], lr["ci_high"]),
            "p (Holm) among learners": fmt.p_value(lr["p_holm"]),
            "learner unit": units(lr), "median Δ among learners": outcome.delta(lr["median"]),
            "verdict among learners": lr["verdict"],
            f"Δ {outcome.short}, all trials": outcome.delta(v["diff"]),
        })
    return pd.DataFrame(rows)


def noop_lines(result: Analysis) -> tuple[pd.DataFrame, list[str]]:
    """The no-op table (identical pairs per level; learning-rate changes for schedule factors)."""
    table = result.noops
    lr_factors = schedule_factors(result.frame, result.factor_levels)
    rows = []
    for _, row in table.iterrows():
        shown = {"factor": row["factor"], "level vs reference": label(row),
                 "pairs with equal val accuracy": f"{int(row['equal_values'])} of {int(row['pairs'])}",
                 "identical pairs (val accuracy, val loss, test accuracy)":
                     f"{int(row['equal_pairs'])} of {int(row['pairs'])}"}
        if row["factor"] in lr_factors:
            shown["learning rate changed during training"] = (
                f"{int(row['level_lr_changed'])} of {int(row['level_trials'])} {row['level']} trials, "
                f"{int(row['reference_lr_changed'])} of {int(row['reference_trials'])} {row['reference']} trials")
        shown["verdict"] = row["verdict"]
        rows.append(shown)
    return pd.DataFrame(rows), lr_factors


def power_table(result: Analysis) -> pd.DataFrame:
    power = result.power
    rows = [{"seeds per config": f"{int(power['seeds'])} (main)",
             "smallest detectable difference between two configs": fmt.points(power["two_configs"])}]
    if "confirm_seeds" in power:
        rows.append({"seeds per config": f"{int(power['confirm_seeds'])} (confirm)",
                     "smallest detectable difference between two configs": fmt.points(power["two_configs_confirm"])})
    table = pd.DataFrame(rows)
    table.insert(0, "seed noise: SD over seeds, best configs pooled",
                 f"{fmt.points(power['top_sd'])} ({int(power['top_configs'])} configs, df {int(power['top_df'])})")
    table.insert(1, "median SD over all configs", fmt.points(power["median_sd"]))
    return table


def effects_section(result: Analysis, curves: pd.DataFrame, out: Path) -> str:
    if not result.factors:
        return "## Effects of each factor\n\nThis study has no factor with two or more levels: nothing to compare.\n"
    for metric, table in result.effects.items():
        table.to_csv(out / "tables" / f"effects_{metric}.csv", index=False)
    for metric, table in result.learners.items():
        table.to_csv(out / "tables" / f"effects_learners_{metric}.csv", index=False)
    result.failures.to_csv(out / "tables" / "effects_failure_rate.csv", index=False)
    result.noops.to_csv(out / "tables" / "noops.csv", index=False)
    write_latex(effects_table(result), out / "tables" / f"effects_{PRIMARY}.tex")
    one_block = any(result.effects[PRIMARY]["unit"] == "seeds")
    parts = ["## Effects of each factor\n",
             "Each level against the factor's reference level (the first listed in the spec). **Unit: the block**, "
             "a combination of the other factors' levels: within a block the level's and the reference's trials "
             "are paired by seed and their differences averaged over seeds, giving one difference per block. Δ is "
             "the mean over blocks with its 95% Student-t interval over blocks; `median Δ` is the median block; "
             "`seed-noise CI` is the same mean with the blocks held fixed (only the scatter of seeds within "
             "blocks counts: how precisely these blocks were measured, not how far the effect generalises over "
             "the other factors); P(level > ref) is the share of blocks the level wins (ties, exactly equal "
             "blocks, count half and are counted) with its Wilson interval; p from the two-sided t test over "
             "blocks (the test of the interval), Holm-corrected over the table; `detectable` is the smallest true "
             "effect this many blocks detect with 80% power. "
             "`verdict`: `higher`/`lower` when the corrected test is significant; `no-op` or `mostly no-op` when "
             "the level left the val accuracy bit-identical in all or at least half of its pairs (see "
             "[No-ops](#no-ops)), so no test is read; else `not significant`. Test accuracy and val loss: "
             "`tables/effects_*.csv`, which also hold the pseudo-replicated interval (every seed pair counted as "
             "independent) only to show how much narrower it would be.\n"
             + ("\nThis study varies one factor, so there is one block: the unit is the seed.\n" if one_block else ""),
             fmt.markdown(effects_table(result), parse_numbers=False) + "\n",
             "### Learning vs accuracy\n\n"
             f"A trial **fails** at val accuracy at most {fmt.value(result.rule.threshold, PRIMARY)} (the "
             f"validation set's majority-class rate {fmt.value(result.rule.majority_rate, PRIMARY)}, from "
             f"{result.rule.source}, plus {fmt.points(result.rule.margin)}) or with a non-finite loss, and "
             f"**learns** at {fmt.value(result.rule.learn_threshold, PRIMARY)} or more (see Trials). `Δ failure "
             "rate`: the level's effect on the share of trials that fail, by block. `Δ among learners`: only pairs "
             "where both trials learned (blocks without such a pair drop out), with the median block beside the "
             "mean; it reads beside the failure rate, because a level that rescues failing configs leaves the "
             "reference's easiest blocks as its learners.\n",
             fmt.markdown(learning_table(result), parse_numbers=False) + "\n"]
    noops, lr_factors = noop_lines(result)
    parts.append(_sensitivity(result, out))
    parts.append("### No-ops\n\nA level that changed nothing gets no p-value: the count of bit-identical pairs (same "
                 "block, same seed; identical in val accuracy, val loss and test accuracy, so two trials that both "
                 "predict the majority class do not pass for identical) says so directly"
                 + (", and for learning-rate schedules the logged learning rate shows whether the schedule acted "
                    "at all" if lr_factors else "") + ".\n\n"
                 + fmt.markdown(noops, parse_numbers=False) + "\n")
    parts.append("### Power\n\nThe smallest difference this study detects with 80% power at a two-sided 5% level: "
                 "per effect in the `detectable` column above (over its blocks); between two single configs it "
                 "depends on the seed noise of the configs a leaderboard compares (the best quarter, pooled) and "
                 "the seeds per config (two-sample t test).\n\n"
                 + fmt.markdown(power_table(result), parse_numbers=False) + "\n")
    parts.append(_curves(result, curves, out))
    return "\n".join(parts)


def _sensitivity(result: Analysis, out: Path) -> str:
    """How the effects among learners move with the learner threshold (the share of the best config's gain)."""
    table = result.sensitivity
    if table.empty:
        return ""
    table.to_csv(out / "tables" / "learner_threshold_sensitivity.csv", index=False)
    shares = list(dict.fromkeys(table["learn_share"]))
    wide = []
    for (factor, level), group in table.groupby(["factor", "level"], sort=False):
        row = {"factor": factor, "level vs reference": f"{level} vs {group['reference'].iloc[0]}"}
        for _, r in group.iterrows():
            name = "not failing" if r["learn_share"] == 0 else f"≥ {fmt.value(r['learn_threshold'], PRIMARY)}"
            row[name] = f"{fmt.delta(r['diff'], PRIMARY)} ({int(r['blocks'])})"
        wide.append(row)
    counts = ", ".join(f"{int(n)} learners at {'not failing' if s == 0 else fmt.share(s)}"
                       for s, n in table.groupby("learn_share", sort=False)["learners"].first().items())
    return ("### Sensitivity to the learner threshold\n\n"
            f"The effects among learners under each rule for *learns* (a trial that does not fail; or one that reaches "
            f"{', '.join(fmt.share(s) for s in shares if s)} of the way from the majority-class rate to the best "
            f"config's mean): mean block difference (blocks left). {counts}. A headline effect among learners that "
            "changes sign or size with the rule leans on trials that only partly learn.\n\n"
            + fmt.markdown(pd.DataFrame(wide), parse_numbers=False) + "\n")


def _curves(result: Analysis, curves: pd.DataFrame, out: Path) -> str:
    parts = ["### Per level, learning curves with seed bands\n\nPer seed, the mean over the trials at a level; "
             "line = mean over seeds, band = min..max over seeds. Per level: mean, std and n of the final "
             "validation and test accuracy over all its trials (other factors and seeds pooled) in "
             "`tables/effect_<factor>.csv`.\n"]
    for factor, labels in result.factor_levels.items():
        table = level_summary(result.frame, factor, reference=labels[0])
        table.to_csv(out / "tables" / f"effect_{factor}.csv", index=False)
        if not curves.empty:
            bands = {m: seed_bands(curves, result.frame, factor, m) for m in CURVE_METRICS}
            figure = figures.seed_band_curves(bands, factor, labels, out / "figures" / f"curves_{factor}.png")
            parts.append(f"![{factor}](figures/{figure.name})\n")
        else:
            parts.append(f"#### `{factor}`\n\n{fmt.markdown(table)}\n")
    return "\n".join(parts)


class EffectsSection:
    def render(self, ctx: ReportContext) -> str:
        return effects_section(ctx.result, ctx.curves, ctx.out) if ctx.result else ""
