"""A tuning study's search as its report reads it: trials, reported values, importances, the best trial.

The report (study.report.tune_report) builds tables and figures from these; the Optuna study
(the source of truth for the search) and Optuna's importance evaluators stay here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
import pandas as pd
from optuna.trial import TrialState

from study.core.names import EPOCHS_ATTR, RUN_ID_ATTR
from study.queue.records import QueuedTrial
from study.queue.trial_queue import TrialQueue, queued_trial
from study.spec.tune_spec import TuneSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class Importances:
    """Each evaluator's importances per searched field, on the completed trials and (when every finished trial
    reached a common step) on all of them at that step; what could not be computed, and why."""

    results: dict[str, dict[str, float]] = field(default_factory=dict)  # "<evaluator>, <which trials>" -> field -> share
    problems: list[str] = field(default_factory=list)
    complete: int = 0
    finished: int = 0
    common_step: int | None = None


class Search:
    """The Optuna study of one tuning spec."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    @classmethod
    def load(cls, queue: TrialQueue, name: str) -> Search | None:
        try:
            return cls(optuna.load_study(study_name=name, storage=queue.storage))
        except KeyError:
            return None

    def best(self) -> QueuedTrial | None:
        if not self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        return queued_trial(self.study.best_trial)

    def trials_table(self, spec: TuneSpec) -> pd.DataFrame:
        """One row per trial: state, value, params, epochs run/planned, duration, MLflow run id."""
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            planned = spec.config_for(t.params).epochs if set(spec.space) <= set(t.params) else spec.base.epochs
            rows.append({
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{name: t.params.get(name) for name in spec.space},
                "epochs_run": int(t.user_attrs.get(EPOCHS_ATTR, len(t.intermediate_values))),
                "epochs_planned": planned,
                "last_reported": t.intermediate_values[t.last_step] if t.last_step is not None else math.nan,
                "duration_s": t.duration.total_seconds() if t.duration else math.nan,
                "test_accuracy": t.user_attrs.get("test_accuracy", math.nan),
                "enqueued": t.user_attrs.get("enqueued", ""),
                "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR, ""),
            })
        return pd.DataFrame(rows)

    def intermediate_values(self) -> pd.DataFrame:
        """Long frame (number, state, step, value) of what each trial reported to the pruner."""
        rows = [(t.number, t.state.name, step, value) for t in self.study.get_trials(deepcopy=False)
                for step, value in sorted(t.intermediate_values.items())]
        return pd.DataFrame(rows, columns=["number", "state", "step", "value"])

    def importances(self) -> Importances:
        """Optuna's fANOVA (seed 0) and PED-ANOVA importances, on the completed trials and on every finished
        trial at the last step all of them reached (see `common_step_study`)."""
        evaluators = {
            "fANOVA": lambda: optuna.importance.FanovaImportanceEvaluator(seed=0),
            "PED-ANOVA": lambda: optuna.importance.PedAnovaImportanceEvaluator(),
        }
        step, every = common_step_study(self.study)
        studies = {"completed trials": self.study} | ({f"all trials at epoch {step}": every} if every is not None
                                                      else {})
        out = Importances(common_step=step if every is not None else None)
        for which, source in studies.items():
            for label, evaluator in evaluators.items():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out.results[f"{label}, {which}"] = optuna.importance.get_param_importances(
                            source, evaluator=evaluator())
                except Exception as exc:  # noqa: BLE001 - too few or too uniform trials; say so instead of failing
                    out.problems.append(f"{label}, {which}: {type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0] if str(exc) else ''}")
        out.complete = len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        out.finished = len(self.study.get_trials(deepcopy=False, states=FINISHED))
        return out


def common_step_study(study: optuna.Study) -> tuple[int, optuna.Study | None]:
    """Every finished trial (completed or pruned) as a completed trial whose value is what it reported at the
    last step all of them reached: importances over the whole search, not only the pruner's survivors."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    reached = [max(t.intermediate_values) for t in finished if t.intermediate_values]
    if len(reached) < 2 or len(reached) < len(finished):
        return 0, None
    step = min(reached)
    copy = optuna.create_study(direction=study.direction)
    for trial in finished:
        if step in trial.intermediate_values:
            copy.add_trial(optuna.trial.create_trial(params=trial.params, distributions=trial.distributions,
                                                     value=trial.intermediate_values[step]))
    return step, copy if len(copy.trials) == len(finished) else None
