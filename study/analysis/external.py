"""`study analyze`: the study analysis (block-aware effects, failures, decomposition, leaderboard) on any
MLflow experiment, through the same `analyse` a study's report uses.

The adapter is small: the runs become the tidy trial frame (study.analysis.external_design), the chosen
metric fills the column the analysis reads (PRIMARY; negated when lower is better, so "best" and "higher"
keep their meaning), and a light StudySpec names the factors, their levels (reference first) and the
seeds. The report labels the column with the metric's real name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from study.analysis.external_design import Design, tidy_runs
from study.analysis.stats.failures import FAILURE_MARGIN, FailureRule
from study.analysis.stats.intervals import in_unit_interval
from study.analysis.study_analysis import PRIMARY, Analysis, analyse
from study.config import TrialConfig
from study.spec.analyze_spec import AnalyzeSpec
from study.spec.designs import Level
from study.spec.study_spec import StudySpec
from study.tracking.experiments import experiment_runs, metric_history, open_store

ABSENT = ("test_accuracy", "final_val_loss")  # results a study's trials have and these runs do not: left empty


@dataclass
class ExternalAnalysis:
    spec: AnalyzeSpec
    tracking_uri: str
    design: Design
    tidy: pd.DataFrame  # the trials, with PRIMARY holding the outcome (see `outcome_label`)
    curves: pd.DataFrame  # the metric per logged step (run_id, metric, epoch, value); empty without a history
    result: Analysis

    @property
    def outcome_label(self) -> str:
        """The name the outcome is shown under: the metric, or its negative for a lower-is-better metric."""
        return f"−{self.spec.metric}" if self.spec.lower_is_better else self.spec.metric

    @property
    def percent(self) -> bool:
        """Shown in % and pp: an accuracy (by name) whose values lie in [0, 1], higher being better."""
        return (self.spec.metric.endswith("accuracy") and not self.spec.lower_is_better
                and in_unit_interval(self.tidy[PRIMARY]))


def analyse_experiment(spec: AnalyzeSpec) -> ExternalAnalysis:
    """Read the experiment's runs, check its design, run the study analysis; InputError (exit 2) only when
    nothing can be estimated."""
    uri = open_store(spec.tracking_uri)
    tidy, design = tidy_runs(experiment_runs(spec.experiment), spec)
    sign = -1.0 if spec.lower_is_better else 1.0
    tidy[PRIMARY] = sign * tidy.pop("outcome")
    for name in ABSENT:
        tidy[name] = math.nan
    seeds = tuple(sorted(tidy["seed"].unique(), key=lambda s: (str(type(s)), s)))
    study = StudySpec(name=spec.name, source=spec.source, base=TrialConfig(), seeds=seeds, design="full_factorial",
                      factors={f: tuple(Level(label, {f: label}) for label in levels)
                               for f, levels in design.levels.items()},
                      steps_per_execution=1, description=f"MLflow experiment {spec.experiment}")
    reference = TrialConfig(hparams={f: levels[0] for f, levels in design.levels.items()})
    result = analyse(study, tidy, reference, failure_rule(spec, sign), source_name="the reference levels")
    curves = metric_history(tidy["run_id"].tolist(), spec.metric)
    return ExternalAnalysis(spec, uri, design, tidy, curves, result)


def failure_rule(spec: AnalyzeSpec, sign: float) -> FailureRule:
    """A run did not learn at or below chance + margin (in the analysed, sign-adjusted units); without a
    chance level no run counts as failed."""
    if spec.chance is None:
        return FailureRule(-math.inf, margin=0.0, source="no chance level given")
    margin = FAILURE_MARGIN if spec.margin is None else spec.margin
    return FailureRule(sign * spec.chance, margin=margin, source="--chance")
