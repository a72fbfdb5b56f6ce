"""The plain-language summary: sentences built only from numbers the report's tables show.

Every number goes through `study.report.format`, the same formatters the tables use,
so a reader can find each quoted number in a table. A claim of an effect is made
only when the Holm-corrected test supports it; otherwise the sentence says so.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.stats.anova import strongest_interactions
from study.analysis.stats.divergence import CHANCE_ACCURACY
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.section import ReportContext


def summary_sentences(result: Analysis) -> list[str]:
    """Sentences in order of weight: best config, factors by importance, path, interactions, divergence."""
    if result.frame.empty:
        return []
    out = [_best_config(result)]
    if result.factors:
        out += _effects(result)
        out += _importance(result)
        out += _path(result)
    out.append(_divergence(result))
    return [s for s in out if s]


def summary_section(result: Analysis) -> str:
    sentences = summary_sentences(result)
    if not sentences:
        return ""
    table_note = ("Each number below appears in a table further down (leaderboard, effects, ANOVA, ablation path). "
                  "Intervals are 95%; pp = percentage points of accuracy; effects are paired differences to the "
                  "factor's reference level, tested with Wilcoxon signed-rank and Holm-corrected.")
    if result.seeds < 3:
        table_note += (f" Caution: {result.seeds} seed(s) only; intervals over seeds are wide or missing and "
                       "conclusions are provisional.")
    return "## Findings\n\n" + table_note + "\n\n" + "\n".join(f"- {s}" for s in sentences) + "\n"


def _levels(row: pd.Series, factors: list[str]) -> str:
    return ", ".join(f"{f}={row[f]}" for f in factors)


def _best_config(result: Analysis) -> str:
    best = result.configs.iloc[0]
    head = (f"The best configuration by mean val accuracy is `{_levels(best, result.factors)}`: " if result.factors
            else "The study's one configuration reaches ")
    interval = fmt.interval(best[f"{PRIMARY}_ci_low"], best[f"{PRIMARY}_ci_high"], PRIMARY)
    return (f"{head}{fmt.value(best[f'{PRIMARY}_mean'], PRIMARY)} {interval} val accuracy over {int(best['n'])} "
            f"seed(s), with test accuracy {fmt.value(best['test_accuracy_mean'], 'test_accuracy')}.")


def _factor_order(result: Analysis) -> list[str]:
    if not result.ranking.empty:
        ranked = list(result.ranking["factor"])
        return ranked + [f for f in result.factors if f not in ranked]
    return result.factors


def _effects(result: Analysis) -> list[str]:
    table = result.effects[PRIMARY]
    out = []
    for factor in _factor_order(result):
        for _, row in table[table["factor"] == factor].iterrows():
            out.append(_effect_sentence(row))
    return out


def _effect_sentence(row: pd.Series) -> str:
    lvl, ref = f"`{row['factor']}={row['level']}`", f"`{row['factor']}={row['reference']}`"
    if row["n_pairs"] == 0:
        return f"{lvl} vs {ref}: no paired trials finished yet, so no comparison."
    size = fmt.delta(row["diff"], PRIMARY)
    interval = fmt.interval(row["ci_low"], row["ci_high"], PRIMARY, signed=True)
    evidence = (f"Holm-corrected Wilcoxon p = {fmt.p_value(row['p_holm'])}; it wins "
                f"P = {fmt.probability(row['p_improvement'])} of {int(row['n_pairs'])} pairs")
    if row["verdict"] in ("higher", "lower"):
        verb = "raises" if row["verdict"] == "higher" else "lowers"
        return f"{lvl} {verb} val accuracy by {size} {interval} over {ref} ({evidence})."
    if row["verdict"] == "test only":
        return (f"{lvl} vs {ref}: {size} {interval} in val accuracy; the test finds a consistent shift ({evidence}) "
                "but the interval of the mean difference includes 0: a few extreme pairs (diverged or stuck "
                "trials) make its size uncertain.")
    return (f"{lvl} vs {ref}: {size} {interval} in val accuracy, not significant after Holm correction "
            f"({evidence}).")


def _importance(result: Analysis) -> list[str]:
    if result.ranking.empty:
        return []
    ranking = result.ranking
    top = [f"`{r['factor']}` ({fmt.share(r['main_share'])})" for _, r in ranking.head(3).iterrows()]
    text = "By the ANOVA, the factor whose main effect explains the most variance of val accuracy is " + top[0]
    if len(top) > 1:
        text += ", then " + " and ".join(top[1:])
    table = result.anova.table
    residual = table[table["kind"] == "residual"]["share"]
    pairs = strongest_interactions(result.anova, k=1)
    if pairs:
        a, b = pairs[0]
        share = table.set_index("term").loc[f"{a} x {b}", "share"]
        text += f"; the strongest two-way interaction, `{a} x {b}`, explains {fmt.share(share)}"
    if len(residual):
        text += f"; the residual (seed noise and higher-order interactions) is {fmt.share(residual.iloc[0])}"
    return [text + "."]


def _path(result: Analysis) -> list[str]:
    path = result.path
    if path.empty:
        return []
    start = path.iloc[0]
    out = [f"{result.path_source_name[0].upper()}{result.path_source_name[1:]} (`{start['config']}`) reaches "
           f"{fmt.value(start['mean'], PRIMARY)} {fmt.interval(start['ci_low'], start['ci_high'], PRIMARY)}."]
    steps = path.iloc[1:]
    if steps.empty:
        out[-1] = out[-1][:-1] + ", and it is the best config: the ablation path is empty."
        return out
    biggest = steps.loc[steps["gain"].idxmax()] if steps["gain"].notna().any() else steps.iloc[0]
    flips = ", ".join(f"`{f}`" for f in steps["flip"])
    out.append(f"The greedy ablation path to the best config flips {len(steps)} factor(s) in this order: {flips}; "
               f"the largest step is `{biggest['flip']}` with {fmt.delta(biggest['gain'], PRIMARY)} "
               f"{fmt.interval(biggest['gain_ci_low'], biggest['gain_ci_high'], PRIMARY, signed=True)} "
               f"(paired over {int(biggest['gain_pairs'])} seed(s)).")
    if result.path_note:
        out.append(f"The path stops early: {result.path_note}.")
    return out


def _divergence(result: Analysis) -> str:
    frame = result.frame
    diverged = int(frame["status"].eq("diverged").sum())
    if diverged == 0:
        return f"No trial diverged (0 of {len(frame)})."
    imputed = int((frame["status"].eq("diverged") & frame["imputed"]).sum())
    return (f"{diverged} of {len(frame)} trials diverged (NaN/inf loss); {imputed} of them left no finite epoch and "
            f"count with chance accuracy {fmt.value(CHANCE_ACCURACY, PRIMARY)} (see the divergence table).")


class FindingsSection:
    def render(self, ctx: ReportContext) -> str:
        return summary_section(ctx.result) if ctx.result is not None else ""
