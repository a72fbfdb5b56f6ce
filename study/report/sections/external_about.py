"""The sections of an analysed experiment's report that say what it rests on: the summary, what the design
allows, how the numbers are computed, the files, and how to make it again."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from study.analysis.external import ExternalAnalysis
from study.analysis.study_analysis import PRIMARY
from study.core.text import redact
from study.report.format import Outcome


@dataclass
class ExternalContext:
    """What an analysed experiment's sections read: the analysis, where to write, how to print the outcome."""

    analysis: ExternalAnalysis
    out: Path
    outcome: Outcome


def summary_section(ctx: ExternalContext) -> str:
    x, spec = ctx.analysis, ctx.analysis.spec
    design, tidy = x.design, x.tidy
    factors = "; ".join(f"`{f}` ({len(levels)}: " + ", ".join(f"`{lv}`" for lv in levels[:8])
                        + (", …" if len(levels) > 8 else "") + ")" for f, levels in design.levels.items())
    per_config = tidy.groupby([f"level_{f}" for f in design.levels], observed=True)["seed"].nunique()
    history = x.curves["run_id"].nunique() if not x.curves.empty else 0
    lines = [f"# Experiment `{spec.experiment}`, analysed", "",
             "Runs logged to MLflow by their own code, analysed as a study: block-aware effects, "
             + ("runs that did not learn, " if spec.chance is not None else "")
             + "the variance decomposition where the design is a complete factorial, and a leaderboard.", "",
             "## Summary", "",
             f"- Tracking store `{redact(x.tracking_uri)}`, experiment `{spec.experiment}`.",
             f"- Runs: {len(tidy)} of {design.runs} used"
             + (f"; {len(design.excluded)} left out (see [What this experiment can estimate]"
                "(#what-this-experiment-can-estimate))." if len(design.excluded) else "."),
             f"- Factors (MLflow params; levels, the reference first): {factors}.",
             f"- Seeds: the {design.seed_source} `{spec.seed_param}`; {tidy['seed'].nunique()} distinct, "
             + (f"{per_config.min()} per config." if per_config.min() == per_config.max()
                else f"{per_config.min()} to {per_config.max()} per config."),
             "- Outcome: " + outcome_text(ctx) + ".",
             f"- Per-step history of `{spec.metric}`: "
             + (f"{history} runs logged it at more than one step (curves below)." if history
                else "none (one value per run)."),
             ]
    return "\n".join(lines) + "\n"


def outcome_text(ctx: ExternalContext) -> str:
    spec = ctx.analysis.spec
    text = f"`{spec.metric}`, the last value each run logged"
    if spec.lower_is_better:
        return (text + f"; lower is better, so the analysis reads its negative, shown as `{ctx.outcome.label}`: a "
                       f"positive Δ is a lower `{spec.metric}`, and the leaderboard's best has the lowest")
    return text + "; higher is better" + (" (shown in % and percentage points)" if ctx.outcome.percent else "")


def design_section(ctx: ExternalContext) -> str:
    x = ctx.analysis
    design, result = x.design, x.result
    tables = ctx.out / "tables"
    for name, table in (("excluded_runs", design.excluded), ("missing_cells", design.missing_cells),
                        ("unbalanced_configs", design.unbalanced)):
        if len(table):
            table.to_csv(tables / f"{name}.csv", index=False)
    findings = design.findings()
    lines = ["## What this experiment can estimate", "",
             ("The design has gaps; each is named with what it means for the numbers below (every left-out run in "
              "`tables/excluded_runs.csv`):" if findings else
              f"Every run was used, and the design is a complete, balanced factorial of {design.cells} configs.")]
    lines += [f"- {line}." for line in findings]
    lines += ["", "What the numbers below rest on:", ""]
    for _, row in result.effects[PRIMARY].iterrows():
        lines.append(f"- `{row['factor']}` = `{row['level']}` vs `{row['reference']}`: {int(row['blocks'])} "
                     f"{row['unit']} from {int(row['pairs'])} seed pairs"
                     + (f", {int(row['unpaired'])} runs without a partner" if row["unpaired"] else "") + ".")
    if result.decomposition.empty:
        lines.append(f"- Variance decomposition: not computed ({result.decomposition.note}).")
    else:
        lines.append(f"- Variance decomposition: the complete factorial of {result.decomposition.configs} configs.")
    if x.spec.chance is None:
        lines.append("- Runs that did not learn: not separated (no `--chance`: give the metric's value at chance "
                     "to count runs at or near it apart).")
    if int(result.configs["n"].max()) < 2:
        lines.append("- One seed per config: no interval over seeds in the leaderboard.")
    return "\n".join(lines) + "\n"


METHODS = """## How the numbers are computed

- **Outcome.** {outcome}. Runs are paired by the value of their seed.
- **Effects.** Each level against its factor's reference level, over **blocks**: a block is one combination of
  the other factors' levels; within it the two levels' runs are paired by seed and the differences averaged over
  seeds, so each block counts once (seeds within a block nearly repeat each other; counting every pair as
  independent would make the interval far too narrow: that pseudo-replicated interval is in `tables/effects.csv`
  for comparison only). 95% Student-t interval and two-sided t test over blocks, Holm-corrected over the table.
  With one varied factor there is one block and the seed is the unit.
- **Decomposition.** Only for a complete factorial: the saturated model, every main effect and interaction from
  the config means, tested against the seeds' scatter within configs (unweighted means when configs have
  different numbers of seeds).
- **Leaderboard.** Per config: mean and 95% Student-t interval over its seeds. The best config is picked on the
  same runs that measure it, so its mean is optimistic: rerun the top configs on new seeds to confirm it.
- **Limits.** Only the last logged value of the metric per run is analysed; params are compared as text (`0.1`
  and `0.10` are two levels); a level that occurs in one block only gives that block's difference, not a
  general effect.
"""


def methods_section(ctx: ExternalContext) -> str:
    failures = ""
    if ctx.analysis.spec.chance is not None:
        failures = ("\n- **Runs that did not learn.** A run at or below the chance level plus the margin (in the "
                    "analysed units) did not learn; per level: its effect on that share, by block, and the effect "
                    "among runs that learned.\n")
    return METHODS.format(outcome=outcome_text(ctx)).replace("\n- **Decomposition.**", failures.rstrip("\n")
                                                             + "\n- **Decomposition.**", 1)


def files_section(ctx: ExternalContext) -> str:
    described = {"trials": "one row per run used: run, seed, levels, the outcome", "epoch_metrics":
                 "the metric per logged step", "excluded_runs": "every run left out, with its reason",
                 "missing_cells": "combinations of levels without a run", "unbalanced_configs":
                 "configs missing seeds that other configs have", "effects": "the effects by block (every column)",
                 "effects_learners": "effects among runs that learned", "effects_failure_rate":
                 "effects on the share of runs that did not learn", "leaderboard": "per config: n, mean, std, interval",
                 "decomposition": "every term of the saturated decomposition", "importance": "total-effect ranking"}
    rows = []
    for name, text in described.items():
        present = [e for e in ("csv", "tex") if (ctx.out / "tables" / f"{name}.{e}").is_file()]
        if present:
            rows.append(f"- `tables/{name}.{present[0] if len(present) == 1 else '{csv,tex}'}`: {text}.")
    return "## Files\n\n" + "\n".join(rows) + "\n(`.tex`: the table as shown above, a LaTeX booktabs tabular.)\n"


def reproducibility_section(ctx: ExternalContext) -> str:
    spec = ctx.analysis.spec
    command = ["python", "-m", "study", "analyze"]
    if spec.source != "command line":
        command.append(spec.source)
    else:
        command += ["--experiment", spec.experiment, "--factors", ",".join(spec.factors), "--seed-param",
                    spec.seed_param, "--metric", spec.metric]
        command += ["--lower-is-better"] if spec.lower_is_better else []
        command += ["--chance", str(spec.chance)] if spec.chance is not None else []
        command += ["--margin", str(spec.margin)] if spec.margin is not None else []
        if spec.reference:
            command += ["--reference", ",".join(f"{k}={v}" for k, v in spec.reference.items())]
    versions = ", ".join(f"{name} {_version(name)}" for name in ("mlflow", "pandas", "scipy", "statsmodels"))
    return ("## Reproducibility\n\n"
            f"- Made by `{shlex.join(command)}` (with the store's `--tracking-uri`), {versions}.\n"
            "- The MLflow run id of every run used: `tables/trials.csv`.\n")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"

