"""Write reports/<name>/README.md (+ figures, tables) for an MLflow experiment analysed by `study analyze`.

The same analysis and tables as a study's report, without what only a study has (its spec, the lesson's
claims and figures, the ablation path from a base config, training times), and with a section that says
which runs were used and what the design allows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from study.analysis.external import ExternalAnalysis
from study.analysis.study_analysis import PRIMARY
from study.report.format import Outcome, without_machine_paths
from study.report.sections.advice import advice_section
from study.report.sections.conditional import conditional_section
from study.report.sections.external_about import (ExternalContext, design_section, files_section, methods_section,
                                                  reproducibility_section, summary_section)
from study.report.sections.external_results import (decomposition_section, effects_section, failures_section,
                                                    leaderboard_section)
from study.report.study_report import fresh_output_dirs

def what_to_pick(ctx: ExternalContext) -> str:
    """The top group, the factors settled near the top, the region and the forest plot, as in a study's report."""
    return advice_section(ctx.analysis.result, ctx.out, ctx.outcome)


def where_it_depends(ctx: ExternalContext) -> str:
    return conditional_section(ctx.analysis.result, ctx.out, ctx.outcome)


SECTIONS: list[Callable[[ExternalContext], str]] = [
    summary_section, design_section, what_to_pick, where_it_depends, effects_section, failures_section,
    decomposition_section, leaderboard_section, methods_section, files_section, reproducibility_section,
]


def write_external_report(analysis: ExternalAnalysis) -> Path:
    """Rewrite <reports_dir>/<name>/ from the analysis; returns the README's path."""
    out = analysis.spec.reports_dir / analysis.spec.name
    fresh_output_dirs(out)
    ctx = ExternalContext(analysis, out, outcome(analysis))
    export(analysis, out)
    readme = out / "README.md"
    readme.write_text(without_machine_paths("\n".join(text for text in (s(ctx) for s in SECTIONS) if text)))
    return readme


def outcome(analysis: ExternalAnalysis) -> Outcome:
    label = analysis.outcome_label
    return Outcome(label=label, short=label, percent=analysis.percent)


def export(analysis: ExternalAnalysis, out: Path) -> None:
    """The runs used (the outcome under its own name) and the metric's per-step history."""
    tidy = analysis.tidy.drop(columns=["test_accuracy", "final_val_loss"])
    tidy = tidy.rename(columns={PRIMARY: analysis.outcome_label, **{f"level_{f}": f for f in analysis.design.levels}})
    tidy.to_csv(out / "tables" / "trials.csv", index=False)
    if not analysis.curves.empty:
        analysis.curves.to_csv(out / "tables" / "epoch_metrics.csv", index=False)
