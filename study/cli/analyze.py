"""`python -m study analyze`: an existing MLflow experiment's runs analysed like a study, its report written.

It prints what the design lacks and each effect with its interval, then the report's path; bad input
(no such experiment, factor or metric; an unknown key in the spec file) is one line and exit 2.
"""

from __future__ import annotations

import argparse

from study.analysis.study_analysis import PRIMARY
from study.cli.common import fail
from study.core.errors import EXIT_OK, InputError
from study.spec.analyze_spec import KEYS, load_analyze_spec


def analyze(args: argparse.Namespace) -> int:
    from study.analysis.external import analyse_experiment
    from study.report.external_report import outcome, write_external_report

    try:
        spec = load_analyze_spec(args.spec, {key: getattr(args, key, None) for key in KEYS})
        analysis = analyse_experiment(spec)
    except InputError as exc:
        return fail(exc)
    design, shown = analysis.design, outcome(analysis)
    print(f"experiment {spec.experiment}: {len(analysis.tidy)} of {design.runs} runs used; outcome "
          f"{shown.label}" + (" (the negative of the metric: lower is better)" if spec.lower_is_better else ""))
    for line in design.findings():
        print(f"  note: {line}")
    for _, row in analysis.result.effects[PRIMARY].iterrows():
        print(f"  {row['factor']}: {row['level']} vs {row['reference']}: "
              f"{shown.effect(row['diff'], row['ci_low'], row['ci_high'])} over {int(row['blocks'])} {row['unit']} "
              f"({row['verdict']})")
    print(f"report: {write_external_report(analysis)}")
    return EXIT_OK
