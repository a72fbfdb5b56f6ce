"""An adaptive study's rounds: per target the round that decided it and the trials it took, decided targets
against trial-epochs spent, and the saving against the fixed design at max_seeds.

The rounds and decisions are replayed from the study's results (study.analysis.adaptive_targets), the same pure
function the workers ran when they closed each round, so the report shows the decisions they acted on.
"""

from __future__ import annotations

import pandas as pd

from study.analysis.adaptive_targets import AdaptiveAnalysis, adaptive_analysis
from study.analysis.sequential import FUTILITY, FUTILITY_FROM, FUTILITY_MIN_SEEDS, OPEN
from study.report.figures.pyplot import plt, save
from study.report.format import markdown_table
from study.report.section import ReportContext

ADAPTIVE_KEY = "adaptive"  # ReportContext.extra: the AdaptiveAnalysis

METHOD = f"""- **Adaptive rounds.** The study ran in rounds: every config on the first `start_seeds` seeds, then, after
  each round, one more seed only for the configs whose results enter a target still open. Targets: every main
  effect and, with a companion that brings claims (the lesson's), every claim's accuracy contrast (per seed, the mean over blocks of level
  minus reference: the blocks are held fixed, the seeds are the independent draws, since one seed moves every
  config together), and each config's membership of the top group (its paired difference to every rival over
  shared seeds, Bonferroni over the rivals, each pair's variance moderated by an empirical-Bayes prior with a
  trend in the error rate, Smyth 2004). A target is decided when its interval lies beyond the margin on one side
  or inside it. **Method: repeated confidence intervals** (Jennison & Turnbull 1989) with a **Lan-DeMets
  spending function** over the looks (after 2, 3, ..., max_seeds seeds): their coverage holds at every look at
  once, so a decision is wrong with probability at most alpha whenever the study stopped and whichever targets
  kept it going. Why not a confidence sequence for bounded data (Howard et al. 2021; Waudby-Smith & Ramdas): with
  at most 10 seeds its width, driven by the range [-1, 1], stays tens of points wide; the spending approach
  uses the seeds' normal scatter and the exact joint law of the looks (recursive integration), Student t at each
  look's nominal level (Jennison & Turnbull 2000, ch. 11). Pocock-type spending (the default) spreads alpha
  evenly, so a clear effect is decided on 2-3 seeds; O'Brien-Fleming type keeps it for the last look.
- **Futility.** From {FUTILITY_FROM:.0%} of max_seeds on (never on fewer than {FUTILITY_MIN_SEEDS} seeds), an open target whose **predictive power**
  is under {FUTILITY:.0%} asks for no more seeds (Spiegelhalter, Freedman & Blackburn 1986: the probability, given
  its results so far, that its interval at max_seeds decides it): an effect about as large as the margin cannot be
  decided by any number of seeds this design allows. The rule is non-binding: it only withholds seeds, every
  decision is still read off the repeated intervals, so their error rate is unchanged; such a target is reported
  open.
"""


def adaptive_context(ctx: ReportContext) -> AdaptiveAnalysis | None:
    """The adaptive analysis of the report (computed once), and the expected trials become the rounds' own."""
    if ctx.spec.adaptive is None or ctx.result is None:
        return None
    if ADAPTIVE_KEY not in ctx.extra:
        analysis = adaptive_analysis(ctx.spec, ctx.tidy, ctx.result.rule)
        ctx.extra[ADAPTIVE_KEY] = analysis
        factors = [f for f, levels in ctx.spec.factors.items() if len(levels) > 1]
        asked = {(analysis.grid.labels[c], s) for r in analysis.replay.rounds + [analysis.replay.pending]
                 if r is not None for c in r.configs for s in range(r.seeds)}
        seeds = list(ctx.spec.seeds)
        ctx.expected = [t for t in ctx.spec.unique_trials() if t.config.seed in seeds and
                        (tuple(t.levels.get(f) for f in factors), seeds.index(t.config.seed)) in asked]
    return ctx.extra[ADAPTIVE_KEY]


def decisions_table(analysis: AdaptiveAnalysis) -> pd.DataFrame:
    rows = [{"target": d.target, "kind": d.kind, "decision": d.decision, "round": d.round, "seeds": d.seeds,
             "trials": d.trials, "estimate_pp": 100 * d.estimate, "ci_low_pp": 100 * d.low, "ci_high_pp": 100 * d.high,
             "predictive_power": d.power if d.decision == OPEN else None, "futile": d.futile}
            for d in analysis.replay.decisions.values()]
    table = pd.DataFrame(rows)
    if analysis.fixed is not None and not table.empty:
        table["fixed_decision"] = [analysis.fixed.decisions[t].decision for t in table["target"]]
    return table


def progress_figure(analysis: AdaptiveAnalysis, epochs: int, path) -> None:
    """Decided targets against the trial-epochs spent, round by round, beside the fixed design's budget."""
    spent, decided, total = [0], [0], 0
    for r in analysis.replay.rounds:
        total += r.trials * epochs
        spent.append(total)
        decided.append(r.decided)
    fixed = len(analysis.grid.labels) * analysis.design.max_seeds * epochs
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.plot(spent, decided, marker="o", label="adaptive, after each round")
    for x, y, r in zip(spent[1:], decided[1:], analysis.replay.rounds):
        ax.annotate(f"{r.seeds} seeds", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.axvline(fixed, color="grey", linestyle="--", label=f"fixed design at {analysis.design.max_seeds} seeds")
    if analysis.fixed is not None:
        ax.axhline(len(analysis.fixed.decisions) - len(analysis.fixed.open_targets), color="grey", linestyle=":",
                   label="targets the fixed design decides")
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("targets decided")
    ax.set_xlim(0, fixed * 1.05)
    ax.set_ylim(0, len(analysis.replay.decisions) + 0.5)
    ax.axhline(len(analysis.replay.decisions), color="black", linewidth=0.6, label="every target")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, path)


class AdaptiveSection:
    def render(self, ctx: ReportContext) -> str:
        analysis = adaptive_context(ctx)
        if analysis is None:
            return ""
        spec, replay, design = ctx.spec, analysis.replay, analysis.design
        epochs = spec.base.epochs
        table = decisions_table(analysis)
        table.to_csv(ctx.table_path("adaptive_decisions"), index=False)
        progress_figure(analysis, epochs, ctx.figure_path("adaptive_progress"))
        spent = sum(r.trials for r in replay.rounds)
        fixed = len(analysis.grid.labels) * design.max_seeds
        futile = sum(d.futile for d in replay.decisions.values())
        last = replay.rounds[-1].seeds if replay.rounds else 0
        state = ("finished: every target decided" if replay.finished and not replay.open_targets else
                 f"finished at {last} seeds per config (max_seeds {design.max_seeds}) with "
                 f"{len(replay.open_targets)} target(s) open, {futile} of them futile (predictive power under "
                 f"{FUTILITY:.0%})" if replay.finished else f"round {replay.pending.index} runs now ({len(replay.pending.configs)} "
                                         f"configs to {replay.pending.seeds} seeds)")
        lines = ["## Adaptive rounds", "",
                 f"Design: start {design.start_seeds} seeds, at most {design.max_seeds}, margin "
                 f"{100 * design.margin:g} pp, alpha {design.alpha:g}, {design.spending.replace('_', '-')} spending. "
                 f"{len(replay.rounds)} round(s) so far; {state}.", "",
                 f"**Spent: {spent} trials ({spent * epochs} trial-epochs), {spent / fixed:.0%} of the fixed design at "
                 f"{design.max_seeds} seeds ({fixed} trials, {fixed * epochs} trial-epochs).**", "",
                 "| round | seeds per config | configs run | trials | decided after it | open after it |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r.index} | {r.seeds} | {len(r.configs)} | {r.trials} | {r.decided} | {r.open} |"
                  for r in replay.rounds]
        lines += ["", "![decided targets against trial-epochs](figures/adaptive_progress.png)", ""]
        if analysis.fixed is not None:
            both = table[table["fixed_decision"] != OPEN]
            same = int((both["decision"] == both["fixed_decision"]).sum())
            lines += [f"Every config has all {design.max_seeds} seeds here, so the fixed design's decisions can be "
                      f"read too: it decides {len(both)} targets; the adaptive rounds reached the same decision on "
                      f"{same} of them.", ""]
        shown = table[table["kind"] != "top group"]
        members = table[table["kind"] == "top group"]
        lines += ["Each effect and claim: the round whose results decided it, the seeds and trials it took, and its "
                  "repeated confidence interval at that look (pp):", "",
                  markdown_table(shown[["target", "decision", "round", "seeds", "trials", "estimate_pp", "ci_low_pp",
                                        "ci_high_pp"]].round(3)), ""]
        if not members.empty:
            counts = members.groupby(["decision", "seeds"]).size().reset_index(name="configs")
            lines += ["Top-group membership, configs by decision and the seeds that decided it (each config's row, "
                      "with its distance to the best rival and its interval, is in `tables/adaptive_decisions.csv`):",
                      "", markdown_table(counts), ""]
        if replay.open_targets:
            lines += [f"Open at the end: {', '.join(replay.open_targets[:12])}"
                      + (f" and {len(replay.open_targets) - 12} more" if len(replay.open_targets) > 12 else "") + ".", ""]
        return "\n".join(lines)
