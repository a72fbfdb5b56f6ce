"""The `confirm` stage as queue work: once every main trial is done, its trials are enqueued like any other.

Any worker that runs out of work checks whether the main trials are all done; the first to see it reads
their results from MLflow, picks the configs to confirm (study.analysis.confirm: the same pure function
the report uses) and enqueues them with the confirm seeds. The others find the keys already live (the
queue enqueues a key once; a duplicate from a race is dropped when taken, as for any trial). Resume is
free: a confirm trial is an ordinary trial with its own key.
"""

from __future__ import annotations

from study.analysis.confirm import confirm_trials_from_runs
from study.analysis.runs import trials_frame
from study.core.names import CONFIG_ATTR, KEY_ATTR
from study.core.status import DONE_STATUSES
from study.queue.progress import key_states
from study.queue.protocol import Queue
from study.spec.designs import Trial
from study.spec.study_spec import StudySpec


def main_done(queue: Queue, keys: list[str]) -> bool:
    """Every main trial has a result (completed or diverged)."""
    return all(state in DONE_STATUSES for state in key_states(queue.trials(), keys).values())


def due_trials(spec: StudySpec, queue: Queue, main_keys: list[str]) -> list[Trial] | None:
    """The confirm trials, or None while some main trial has no result yet, in the queue or in MLflow (or
    the spec has no stage).

    Reads the main results from MLflow (the record every worker writes before telling the queue); a key
    the queue calls done but MLflow lacks is re-queued by the next `study run`, and the stage waits."""
    if spec.confirm is None or not main_done(queue, main_keys):
        return None
    return confirm_trials_from_runs(spec, trials_frame(spec.name))


def queued_keys(spec: StudySpec, queue: Queue, main_keys: list[str]) -> list[str]:
    """Keys of confirm trials already in the queue (read from the queue alone: `status` needs no MLflow)."""
    if spec.confirm is None:
        return []
    main, seeds, out = set(main_keys), set(spec.confirm.seeds), []
    for trial in queue.trials():
        key, config = trial.user_attrs.get(KEY_ATTR), trial.user_attrs.get(CONFIG_ATTR) or {}
        if key and key not in main and config.get("seed") in seeds and key not in out:
            out.append(key)
    return out
