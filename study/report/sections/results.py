"""The sections that show a study's results: trials and divergence, leaderboard, effects, interactions, path."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.section import ReportContext
from study.analysis.leaderboard import METRICS as EFFECT_METRICS
from study.analysis.levels import level_summary
from study.analysis.stats.anova import cell_means, strongest_interactions
from study.analysis.stats.curves import seed_bands
from study.analysis.stats.divergence import CHANCE_ACCURACY
from study.analysis.stats.intervals import level_column
from study.report.figures import study_figures as figures

CURVE_METRICS = ("val_accuracy", "val_loss")
HEATMAPS = 3
LEADERBOARD_ROWS = 15


def divergence_section(result: Analysis, all_runs: pd.DataFrame, expected: list, out: Path) -> str:
    """Counts by status and every diverged or missing trial, by name."""
    frame = result.frame
    counts = all_runs["status"].value_counts().to_dict() if not all_runs.empty else {}
    done = set(frame["trial_key"]) if not frame.empty else set()
    missing = [t for t in expected if t.key not in done]
    lines = ["## Trials, divergence and missing results\n",
             f"Finished trials: {len(frame)} of {len(expected)} expected "
             f"({int(frame['status'].eq('completed').sum()) if len(frame) else 0} completed, "
             f"{int(frame['status'].eq('diverged').sum()) if len(frame) else 0} diverged). MLflow trial runs by "
             "status, reruns included: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + "."]
    diverged = frame[frame["status"].eq("diverged")] if len(frame) else frame
    if len(diverged):
        shown = diverged[["seed"] + [level_column(f) for f in result.factors] + ["epochs_run", PRIMARY,
                                                                                      "imputed"]].rename(
            columns={level_column(f): f for f in result.factors})
        shown["epochs_run"] = shown["epochs_run"].astype(int)
        shown[PRIMARY] = [fmt.value(v, PRIMARY) + (" (chance: no finite epoch)" if imp else "")
                          for v, imp in zip(shown[PRIMARY], shown.pop("imputed"))]
        diverged.to_csv(out / "tables" / "diverged_trials.csv", index=False)
        lines.append(f"\n{len(diverged)} trial(s) diverged (the loss became NaN/inf and training stopped). They stay "
                     "in every analysis: with the kept checkpoint's metrics when they had a finite epoch, and with "
                     f"chance accuracy ({fmt.value(CHANCE_ACCURACY, PRIMARY)}) when they had none; their val "
                     "loss is then missing and such pairs are left out of the val-loss effects only.\n")
        lines.append(fmt.markdown(shown.head(40), parse_numbers=False) + ("\n\n(all in `tables/diverged_trials.csv`)" if len(shown) > 40 else ""))
    else:
        lines.append("\nNo trial diverged.")
    if missing:
        table = pd.DataFrame([{"seed": t.config.seed, **t.levels, "trial_key": t.key} for t in missing])
        table.to_csv(out / "tables" / "missing_trials.csv", index=False)
        lines.append(f"\n{len(missing)} expected trial(s) have no finished result yet (not run, failed or interrupted; "
                     "listed in `tables/missing_trials.csv`): comparisons that need them count them as `unpaired`.")
    return "\n".join(lines) + "\n"


def leaderboard_section(result: Analysis, out: Path) -> str:
    configs = result.configs
    configs.to_csv(out / "tables" / "leaderboard.csv", index=False)
    rows = []
    for _, row in configs.head(LEADERBOARD_ROWS).iterrows():
        shown = {f: row[f] for f in result.factors}
        shown["seeds"] = int(row["n"])
        for metric in EFFECT_METRICS:
            name = fmt.METRIC_NAMES[metric]
            shown[f"{name} mean"] = fmt.value(row[f"{metric}_mean"], metric)
            shown[f"{name} 95% CI"] = fmt.interval(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], metric)
        shown["val accuracy std"] = fmt.delta(row[f"{PRIMARY}_std"], PRIMARY).lstrip("+")
        shown["diverged"] = int(row["diverged"])
        rows.append(shown)
    seeds_note = ("With one seed per config there is no interval over seeds (n/a): add seeds to get one. "
                  if result.configs["n"].max() < 2 else "")
    more = f" (top {LEADERBOARD_ROWS}; all {len(configs)} in `tables/leaderboard.csv`)" if len(configs) > LEADERBOARD_ROWS else ""
    return ("## Leaderboard\n\n"
            "Per config, over its seeds: mean, 95% Student-t interval of the mean and std of the kept model's "
            "validation accuracy (the epoch with the lowest val_loss, restored from ModelCheckpoint), its test "
            f"accuracy and val loss{more}. {seeds_note}\n\n" + fmt.markdown(pd.DataFrame(rows), parse_numbers=False) + "\n")


def effects_table(result: Analysis) -> pd.DataFrame:
    """The README's effects table: one row per level vs reference, val and test accuracy."""
    val, test = result.effects["final_val_accuracy"], result.effects["test_accuracy"]
    rows = []
    for (_, v), (_, t) in zip(val.iterrows(), test.iterrows()):
        rows.append({
            "factor": v["factor"], "level vs reference": f"{v['level']} vs {v['reference']}",
            "pairs": int(v["n_pairs"]),
            "Δ val acc [95% CI]": f"{fmt.delta(v['diff'], PRIMARY)} {fmt.interval(v['ci_low'], v['ci_high'], PRIMARY, True)}",
            "p (Wilcoxon)": fmt.p_value(v["p_value"]), "p (Holm)": fmt.p_value(v["p_holm"]),
            "P(level > ref)": fmt.probability(v["p_improvement"]), "verdict": v["verdict"],
            "Δ test acc [95% CI]": f"{fmt.delta(t['diff'], 'test_accuracy')} "
                                   f"{fmt.interval(t['ci_low'], t['ci_high'], 'test_accuracy', True)}",
            "p test (Holm)": fmt.p_value(t["p_holm"]),
            "diverged in pairs": int(v["diverged_in_pairs"]), "unpaired": int(v["unpaired"]),
        })
    return pd.DataFrame(rows)


def effects_section(result: Analysis, curves: pd.DataFrame, out: Path) -> str:
    if not result.factors:
        return "## Effects of each factor\n\nThis study has no factor with two or more levels: nothing to compare.\n"
    for metric, table in result.effects.items():
        table.to_csv(out / "tables" / f"effects_{metric}.csv", index=False)
    parts = ["## Effects of each factor\n",
             "Each level against the factor's reference level (the first listed in the spec), paired: one pair per "
             "combination of the other factors' levels and seed, so each pair differs in this factor only. Δ is the "
             "mean paired difference in percentage points (pp) with its 95% Student-t interval; p from the two-sided "
             "Wilcoxon signed-rank test, Holm-corrected over all comparisons of the same metric; P(level > ref) is "
             "the share of pairs the level wins (ties count half). `verdict`: `higher`/`lower` when the Holm-corrected test is "
             "significant and the interval excludes 0, `test only` when the test is significant but a few extreme "
             "pairs make the interval cover 0, else `not significant`. `unpaired`: trials whose partner is missing "
             "(not run, failed or interrupted). Val loss effects: `tables/effects_final_val_loss.csv`.\n",
             fmt.markdown(effects_table(result), parse_numbers=False) + "\n"]
    parts.append("### Per level, learning curves with seed bands\n\nPer level: mean, std and n of the final "
                 "validation and test accuracy over all its trials (other factors and seeds pooled), and the "
                 "difference of the mean to the reference level. Curves: per seed, the mean over the trials at that "
                 "level; line = mean over seeds, band = min..max over seeds.\n")
    for factor, labels in result.factor_levels.items():
        table = level_summary(result.frame, factor, reference=labels[0])
        table.to_csv(out / "tables" / f"effect_{factor}.csv", index=False)
        section = f"#### `{factor}`\n\n{fmt.markdown(table)}\n"
        if not curves.empty:
            bands = {m: seed_bands(curves, result.frame, factor, m) for m in CURVE_METRICS}
            figure = figures.seed_band_curves(bands, factor, labels, out / "figures" / f"curves_{factor}.png")
            section += f"\n![{factor}](figures/{figure.name})\n"
        parts.append(section)
    return "\n".join(parts)


def interactions_section(result: Analysis, out: Path) -> str:
    head = "## Interactions and importance\n"
    if result.anova.table.empty:
        return head + f"\nNot computed: {result.anova.note}.\n"
    table = result.anova.table
    table.assign(factors=table["factors"].map(" x ".join)).to_csv(out / "tables" / "anova.csv", index=False)
    result.ranking.to_csv(out / "tables" / "importance.csv", index=False)
    order = table.assign(_kind=table["kind"].map({"main": 0, "interaction": 1, "residual": 2}))
    order = order.sort_values(["_kind", "share"], ascending=[True, False])
    shown = pd.DataFrame({
        "term": order["term"], "kind": order["kind"], "df": order["df"].astype(int),
        "share of variance": order["share"].map(fmt.share),
        "F": order["F"].map(lambda x: f"{x:.2f}" if math.isfinite(x) else ""),
        "p": order["p_value"].map(lambda p: fmt.p_value(p) if math.isfinite(p) else ""),
    })
    ranking = pd.DataFrame({
        "rank": result.ranking["rank"], "factor": result.ranking["factor"],
        "main effect share": result.ranking["main_share"].map(fmt.share),
        "+ its two-way interactions": result.ranking["with_interactions"].map(fmt.share),
    })
    bars = figures.importance_bars(result.ranking, out / "figures" / "importance.png")
    parts = [head,
             f"ANOVA of val accuracy on {result.anova.n} trials (statsmodels OLS, type II sums of squares) with every "
             "main effect" + (" and every two-way interaction" if result.anova.interactions else "") +
             "; share of variance = sum of squares / total sum of squares, so the shares of all terms and the "
             "residual (seed noise and higher-order interactions) add up to 100% in a complete factorial. "
             + (f"Note: {result.anova.note}. " if result.anova.note else "")
             + "Full table: `tables/anova.csv`.\n",
             fmt.markdown(shown, parse_numbers=False) + "\n",
             "### Importance ranking\n\nFactors ranked by the share of variance their main effect explains (the "
             "ANOVA's eta squared, not Optuna's fANOVA: on a complete grid the decomposition is exact and needs no "
             "surrogate model). The lighter bar adds the two-way interactions the factor takes part in (each "
             "interaction is counted for both of its factors).\n",
             fmt.markdown(ranking, parse_numbers=False) + "\n", f"![importance](figures/{bars.name})\n"]
    pairs = strongest_interactions(result.anova, k=HEATMAPS)
    if pairs:
        parts.append(f"### The {len(pairs)} strongest interactions\n\nMean val accuracy (%) for each pair of levels, "
                     "all other factors and seeds pooled. Without interaction, two rows would differ by the same amount in "
                     "every column.\n")
        shares = table.set_index("term")["share"]
        for a, b in pairs:
            cells = cell_means(result.frame, a, b, PRIMARY, result.factor_levels[a], result.factor_levels[b])
            cells.to_csv(out / "tables" / f"interaction_{a}_x_{b}.csv")
            figure = figures.interaction_heatmap(cells, a, b, "val accuracy", float(shares[f"{a} x {b}"]),
                                                 out / "figures" / f"interaction_{a}_x_{b}.png")
            parts.append(f"![{a} x {b}](figures/{figure.name})\n")
    return "\n".join(parts)


def path_table(result: Analysis) -> pd.DataFrame:
    rows = []
    for _, row in result.path.iterrows():
        rows.append({"step": int(row["step"]), "flip": row["flip"], "seeds": int(row["n"]),
                     "val acc mean": fmt.value(row["mean"], PRIMARY),
                     "95% CI": fmt.interval(row["ci_low"], row["ci_high"], PRIMARY),
                     "gain vs previous step": fmt.delta(row["gain"], PRIMARY) if row["step"] else "",
                     "gain 95% CI (paired by seed)": fmt.interval(row["gain_ci_low"], row["gain_ci_high"], PRIMARY,
                                                                   True) if row["step"] else "",
                     "config": row["config"]})
    return pd.DataFrame(rows)


def path_section(result: Analysis, out: Path) -> str:
    head = "## Ablation path\n\n"
    if not result.factors:
        return head + "No factors: no path.\n"
    source = ", ".join(f"{f}={v}" for f, v in result.path_source.items())
    intro = (f"Read off the trials (Fawcett & Hoos, 2016): from {result.path_source_name} ({source}) to the best "
             "config by mean val accuracy, flip one factor at a time to the best config's level, each time taking "
             "the flip whose config has the highest mean val accuracy over seeds. Intervals: Student t over seeds; "
             "the gain of a step is paired by seed. ")
    if result.path_source_note:
        intro += f"Note: {result.path_source_note}. "
    if result.path.empty:
        return head + intro + f"\n\nNo path: {result.path_note}.\n"
    result.path.to_csv(out / "tables" / "ablation_path.csv", index=False)
    figure = figures.ablation_path_plot(result.path, "val accuracy", out / "figures" / "ablation_path.png")
    ending = (f"\n\nThe path stops early: {result.path_note}.\n" if result.path_note else "\n")
    return (head + intro + "\n\n" + fmt.markdown(path_table(result), parse_numbers=False) + ending
            + f"\n![ablation path](figures/{figure.name})\n")




class TrialsSection:
    def render(self, ctx: ReportContext) -> str:
        return divergence_section(ctx.result, ctx.all_runs, ctx.expected, ctx.out) if ctx.result else ""


class LeaderboardSection:
    def render(self, ctx: ReportContext) -> str:
        return leaderboard_section(ctx.result, ctx.out) if ctx.result else ""


class EffectsSection:
    def render(self, ctx: ReportContext) -> str:
        return effects_section(ctx.result, ctx.curves, ctx.out) if ctx.result else ""


class InteractionsSection:
    def render(self, ctx: ReportContext) -> str:
        return interactions_section(ctx.result, ctx.out) if ctx.result else ""


class PathSection:
    def render(self, ctx: ReportContext) -> str:
        return path_section(ctx.result, ctx.out) if ctx.result else ""
