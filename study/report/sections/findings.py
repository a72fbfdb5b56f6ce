"""The plain-language summary: sentences built only from numbers the report's tables show.

Every number goes through `study.report.format`, the same formatters the tables use,
so a reader can find each quoted number in a table. A level is said to raise or lower
accuracy only when its block verdict says so; a no-op is called a no-op, not "not significant".
"""

from __future__ import annotations

import pandas as pd

from study.analysis.claim_table import NOT_TESTABLE
from study.analysis.leaderboard import CONFIRMED
from study.analysis.stats.divergence import CHANCE_ACCURACY
from study.analysis.study_analysis import PRIMARY, Analysis
from study.report import format as fmt
from study.report.section import ReportContext
from study.report.sections.decomposition import order_shares

FAILED = "failed"


def summary_sentences(result: Analysis) -> list[str]:
    """In order of weight: what to pick (the top group), what matters near the top, trials that fail or
    partly learn, sign changes, factors by importance, decomposition, claims, power, path, divergence."""
    if result.frame.empty:
        return []
    out = [_top_group(result), _region(result), _failures(result)]
    if result.factors:
        out += _sign_changes(result)
        out += _effects(result)
        out += _decomposition(result)
        out += _claims(result)
        out += _path(result)
    out.append(_power(result))
    out.append(_divergence(result))
    return [s for s in out if s]


def summary_section(result: Analysis) -> str:
    sentences = summary_sentences(result)
    if not sentences:
        return ""
    table_note = ("Each number below appears in a table further down. pp = percentage points. Effects are "
                  "level - reference over blocks (combinations of the other factors, seeds averaged first), each "
                  "with its own 95% interval (unadjusted) and its Holm-corrected p; a level is said to raise or "
                  "lower accuracy only when the Holm test says so. Per-config numbers are over seeds.")
    if result.seeds < 3:
        table_note += (f" Caution: {result.seeds} seed(s) only; intervals over seeds are wide or missing and "
                       "conclusions are provisional.")
    return "## Findings\n\n" + table_note + "\n\n" + "\n".join(f"- {s}" for s in sentences) + "\n"


def _levels(row: pd.Series, factors: list[str]) -> str:
    return ", ".join(f"{f}={row[f]}" for f in factors)


def _top_group(result: Analysis) -> str:
    """What to pick: the top group, never one winner among ties."""
    top = result.top
    if top is None or top.table.empty or not result.factors:
        return _best_config(result)
    seeds = "its confirm seeds" if top.seeds == "confirm" else "the main seeds"
    members = top.members
    best = members.iloc[0]
    if top.size == 1:
        return (f"One config is best on {seeds}: `{_levels(best, top.factors)}` at "
                f"{fmt.value(best['mean'], PRIMARY)}; every other candidate is worse after Holm's correction.")
    low, high = members["mean"].min(), members["mean"].max()
    settled = top.settled
    fixed = ", ".join(f"{r['factor']}={r['levels_in_top_group'][0]}" for _, r in settled.iterrows()
                      if r["verdict"] == "settled")
    open_ = ", ".join(f"`{r['factor']}` ({'/'.join(r['levels_in_top_group'])})" for _, r in settled.iterrows()
                      if r["verdict"] == "open")
    text = (f"What to pick: {top.size} configs cannot be told apart from the best on {seeds} (means "
            f"{fmt.value(low, PRIMARY)} to {fmt.value(high, PRIMARY)}; paired tests against the best, Holm), so no "
            "single config is named the winner")
    if fixed:
        text += f". Settled near the top: {fixed}"
    if open_:
        text += f"; it does not matter there between the levels of {open_}"
    return text + "."


def _region(result: Analysis) -> str:
    region, table = result.region, result.region_effects
    if region is None or table.empty:
        return ""
    matters = [f"`{r['factor']}={r['level']}` vs `{r['reference']}` "
               f"{fmt.effect(r['diff'], r['ci_low'], r['ci_high'], PRIMARY)} (Holm p {fmt.p_value(r['p_holm'])})"
               for _, r in table.iterrows() if r["verdict"] in ("higher", "lower")]
    not_shown = [f"`{r['factor']}={r['level']}`" for _, r in table.iterrows() if r["verdict"] not in ("higher", "lower")]
    text = f"In the region near the top ({region.describe()}; {region.configs} configs)"
    text += (", what still matters: " + "; ".join(matters)) if matters else ", no contrast is significant after Holm"
    if not_shown:
        text += "; not shown to matter there: " + ", ".join(not_shown)
    return text + "."


def _sign_changes(result: Analysis) -> list[str]:
    out = []
    conditional = result.conditional
    for _, row in result.sign_changes.iterrows():
        sub = conditional[(conditional["factor"] == row["factor"]) & (conditional["level"] == row["level"])
                          & (conditional["moderator"] == row["moderator"])].set_index("moderator_level")

        def at(levels: list[str]) -> str:
            return ", ".join(f"{row['moderator']}={m} ({fmt.effect(*sub.loc[m, ['effect', 'ci_low', 'ci_high']], PRIMARY)})"
                             for m in levels)
        strength = ("both sides hold after Holm's correction" if row["holm"]
                    else "at the unadjusted 95% level only (not after Holm's correction)")
        out.append(f"Sign change: `{row['factor']}={row['level']}` vs `{row['reference']}` across `{row['moderator']}`: "
                   f"it helps at {at(row['holds'])} and hurts at {at(row['reverses'])}; {strength}. Its average "
                   "over the grid answers no one's question.")
    return out


def _best_config(result: Analysis) -> str:
    best = result.configs.iloc[0]
    head = (f"The best configuration by mean val accuracy is `{_levels(best, result.factors)}`: " if result.factors
            else "The study's one configuration reaches ")
    interval = fmt.interval(best[f"{PRIMARY}_ci_low"], best[f"{PRIMARY}_ci_high"], PRIMARY)
    seeds = f"over {int(best['n'])} seed(s)"
    if best.get("stage") == CONFIRMED:
        seeds = (f"over its {int(best['n'])} confirm seeds, which played no part in picking it (the main seeds "
                 f"that picked it gave {fmt.value(best['selection_mean'], PRIMARY)})")
    return (f"{head}{fmt.value(best[f'{PRIMARY}_mean'], PRIMARY)} {interval} val accuracy {seeds}, with test "
            f"accuracy {fmt.value(best['test_accuracy_mean'], 'test_accuracy')}.")


def _failures(result: Analysis) -> str:
    rule, frame = result.rule, result.frame
    failed, partial = int(frame[FAILED].sum()), int(frame["partial"].sum())
    learn = (f"a trial learns when it reaches {fmt.value(rule.learn_threshold, PRIMARY)}, "
             f"{fmt.share(rule.learn_share)} of the way from the majority-class rate to the best config's mean")
    if not failed and not partial:
        return f"Every trial learned ({learn})."
    return (f"{failed} of {len(frame)} trials fail (val accuracy at most {fmt.value(rule.threshold, PRIMARY)}, i.e. the "
            f"majority-class rate {fmt.value(rule.majority_rate, PRIMARY)} plus {fmt.points(rule.margin)}, or a "
            f"non-finite loss) and {partial} only partly learn ({learn}): averages mix them with trials that learn, "
            "so each effect below is also given on the failure rate and among learners.")


def _factor_order(result: Analysis) -> list[str]:
    if not result.ranking.empty:
        ranked = list(result.ranking["factor"])
        return ranked + [f for f in result.factors if f not in ranked]
    return result.factors


def _effects(result: Analysis) -> list[str]:
    table = result.effects[PRIMARY]
    out = []
    for factor in _factor_order(result):
        for index in table.index[table["factor"] == factor]:
            out.append(_effect_sentence(table.loc[index], result.failures.loc[index],
                                        result.learners[PRIMARY].loc[index], result))
    return out


def _effect_sentence(row: pd.Series, failure: pd.Series, learners: pd.Series, result: Analysis) -> str:
    lvl, ref = f"`{row['factor']}={row['level']}`", f"`{row['factor']}={row['reference']}`"
    if row["pairs"] == 0:
        return f"{lvl} vs {ref}: no paired trials finished yet, so no comparison."
    if row["verdict"] in ("no-op", "mostly no-op"):
        text = (f"{lvl} vs {ref}: the val accuracy is equal in {int(row['equal_values'])} of {int(row['pairs'])} "
                f"pairs, and {int(row['equal_pairs'])} pairs are identical in every result, so the level changed "
                "(almost) nothing and no test is reported")
        noop = result.noops[(result.noops["factor"] == row["factor"]) & (result.noops["level"] == row["level"])]
        if len(noop) and "level_lr_changed" in noop and pd.notna(noop["level_lr_changed"].iloc[0]):
            text += (f"; the learning rate changed during training in {int(noop['level_lr_changed'].iloc[0])} of "
                     f"{int(noop['level_trials'].iloc[0])} {row['level']} trials")
        return text + "."
    size = fmt.effect(row["diff"], row["ci_low"], row["ci_high"], PRIMARY)
    unit = f"{int(row['blocks'])} {row['unit']}"
    if row["verdict"] in ("higher", "lower"):
        verb = "raises" if row["verdict"] == "higher" else "lowers"
        text = f"{lvl} {verb} val accuracy by {size} over {ref} (Holm p {fmt.p_value(row['p_holm'])}"
    else:
        text = (f"{lvl} vs {ref}: {size} in val accuracy, not significant after Holm's correction "
                f"(Holm p {fmt.p_value(row['p_holm'])}")
    text += f"; {unit}; median {'block' if row['unit'] == 'blocks' else 'seed'} {fmt.delta(row['median'], PRIMARY)})"
    if failure["pairs"] and (failure["diff"] != 0 or failure["ci_low"] != failure["ci_high"]):
        text += (f"; on the share of trials that fail "
                 f"{fmt.effect(failure['diff'], failure['ci_low'], failure['ci_high'], FAILED)} "
                 f"(Holm p {fmt.p_value(failure['p_holm'])})")
    if learners["pairs"]:
        among = fmt.effect(learners["diff"], learners["ci_low"], learners["ci_high"], PRIMARY)
        text += (f"; among trials that learn {among} (Holm p {fmt.p_value(learners['p_holm'])}; "
                 f"{int(learners['blocks'])} {learners['unit']}; median {fmt.delta(learners['median'], PRIMARY)})")
    return text + "."


def _decomposition(result: Analysis) -> list[str]:
    if result.ranking.empty:
        return []
    orders = order_shares(result)
    parts = ", ".join(f"{fmt.share(share)} in {name}" for name, share in orders.items())
    top = [f"`{r['factor']}` ({fmt.share(r['total_share'])})" for _, r in result.ranking.head(3).iterrows()]
    text = (f"The saturated decomposition of val accuracy puts {parts}. Ranked by total effect (every term a factor "
            f"takes part in), the most important factor is {top[0]}")
    if len(top) > 1:
        text += ", then " + " and ".join(top[1:])
    return [text + "."]


def _claims(result: Analysis) -> list[str]:
    claims = result.claims
    if claims.empty:
        return []
    tested = claims[claims["verdict"] != NOT_TESTABLE]
    if tested.empty:
        return ["None of the claims is testable in this study (see the claims table for why)."]
    counts = tested["verdict"].map(lambda v: "depends on another factor" if v.startswith("depends on") else v
                                   ).value_counts()
    order = ("supported", "contradicted", "depends on another factor", "no effect", "inconclusive")
    summary = ", ".join(f"{int(counts[v])} {v}" for v in order if v in counts)
    not_testable = int((claims["verdict"] == NOT_TESTABLE).sum())
    return [f"The claims, contrast by contrast and reading by reading (each claim's own condition, the whole "
            f"grid): {summary}; {not_testable} not testable here (each with its reason in the claims table)."]


def _path(result: Analysis) -> list[str]:
    path = result.path
    if path.empty:
        return []
    start = path.iloc[0]
    seeds = " on the confirm seeds" if result.path_seeds == "confirm" else ""
    name = result.path_source_name
    who = (f"The ablation path starts at {name}'s levels, where the study has them, else the reference level"
           if result.path_source_note else f"{name[0].upper()}{name[1:]}")
    out = [f"{who} (`{start['config']}`) reaches "
           f"{fmt.value(start['mean'], PRIMARY)} {fmt.interval(start['ci_low'], start['ci_high'], PRIMARY)}{seeds}."]
    steps = path.iloc[1:]
    if steps.empty:
        out[-1] = out[-1][:-1] + ", and it is the best config: the ablation path is empty."
        return out
    biggest = steps.loc[steps["gain"].idxmax()] if steps["gain"].notna().any() else steps.iloc[0]
    flips = ", ".join(f"`{f}`" for f in steps["flip"])
    out.append(f"The greedy ablation path to the best config flips {len(steps)} factor(s) in this order: {flips}; "
               f"the largest step is `{biggest['flip']}` with {fmt.delta(biggest['gain'], PRIMARY)} "
               f"{fmt.interval(biggest['gain_ci_low'], biggest['gain_ci_high'], PRIMARY, signed=True)} "
               f"(paired over {int(biggest['gain_pairs'])} seed(s){seeds}).")
    if result.path_note:
        out.append(f"The path stops early: {result.path_note}.")
    return out


def _power(result: Analysis) -> str:
    power = result.power
    if not power or pd.isna(power.get("two_configs")):
        return ""
    text = (f"Power: two configs measured on {int(power['seeds'])} seeds each must differ by at least "
            f"{fmt.points(power['two_configs'])} to be detected with 80% power (seed SD "
            f"{fmt.points(power['top_sd'])} among the best configs)")
    if "two_configs_confirm" in power:
        text += f"; on the {int(power['confirm_seeds'])} confirm seeds, {fmt.points(power['two_configs_confirm'])}"
    return text + "."


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
