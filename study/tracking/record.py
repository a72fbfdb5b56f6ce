"""MLflow as the trial ledger's record (study.queue.ledger.RunRecord): one study's experiment.

The ledger decides; this module only asks MLflow and writes to it, with the tags every
trial run carries (`trial_key`, `trial_status`, `optuna_study`, `optuna_trial_number`).
"""

from __future__ import annotations

from collections.abc import Iterable

from study.core.names import NUMBER_TAG, OPTUNA_STUDY_TAG, STATE_TAG, STATUS_TAG
from study.core.status import TrialStatus
from study.queue.ledger import RecordedRun
from study.tracking.runs import done_keys, finished_trial_run, reap_key_runs, reap_runs, tag_runs


class MlflowRecord:
    """The trial runs of study `study_name` in MLflow experiment `exp_id` (tracking already configured)."""

    def __init__(self, exp_id: str, study_name: str) -> None:
        self.exp_id = exp_id
        self.study_name = study_name

    def finished(self, key: str) -> RecordedRun | None:
        run = finished_trial_run(self.exp_id, key)
        if run is None:
            return None
        return RecordedRun(run.info.run_id, run.data.tags.get(STATUS_TAG, TrialStatus.COMPLETED.value),
                           run.data.metrics.get("final_val_accuracy"))

    def done_keys(self) -> set[str]:
        return done_keys(self.exp_id)

    def close_lost(self, key: str, reason: str) -> None:
        reap_key_runs(self.exp_id, key, reason)

    def close_attempts(self, numbers: Iterable[int], reason: str) -> None:
        for number in numbers:
            reap_runs(self.exp_id, {NUMBER_TAG: str(number), OPTUNA_STUDY_TAG: self.study_name}, reason)

    def mirror_state(self, run_ids: Iterable[str], state: str) -> None:
        tag_runs(run_ids, STATE_TAG, state)
