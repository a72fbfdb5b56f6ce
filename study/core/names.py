"""Names of the records both stores keep: MLflow tags (and probe metric names) and Optuna user attributes.

One module, so the queue, the trackers and the reports can never disagree on a name.
"""

from __future__ import annotations

# --- MLflow run tags
ROLE_TAG = "study_role"  # study (an invocation's parent run) | worker | trial | tune_trial
KEY_TAG = "trial_key"
STATUS_TAG = "trial_status"
WORKER_TAG = "worker"
LEVEL_TAG_PREFIX = "level."
OPTUNA_STUDY_TAG = "optuna_study"
NUMBER_TAG = "optuna_trial_number"
STATE_TAG = "optuna_state"
ERROR_TAG = "error"
EXECUTOR_TAG = "executor"
GROUP_TAG = "trial_group"
STAGE_TAG = "stage"  # a staged study's trials (tune_each_arm): tune | fixed | main | confirm
ARM_TAG = "arm"  # ... and the arm each belongs to
CREATION_TAG = "creation_id"  # a fresh id per run we create: finds the twins a retried create left (tracking.runs)

PARENT_ROLE = "study"
WORKER_ROLE = "worker"  # a local worker's run, nested under its `study run --workers N` invocation's run
TRIAL_ROLE = "trial"
TUNE_ROLE = "tune_trial"
TRIAL_ROLES = (TRIAL_ROLE, TUNE_ROLE)

# --- Optuna trial user attributes
KEY_ATTR = "trial_key"
CONFIG_ATTR = "config"
LEVELS_ATTR = "levels"
GROUP_ATTR = "group"  # trials with the same value can be trained together (one executor call)
# A copy queued again although the queue has the key complete (its MLflow run is lost): the number of
# the newest completed attempt it replaces, which must not make the copy a duplicate.
RETRAINS_ATTR = "retrains"
TAGS_ATTR = "run_tags"  # extra MLflow tags of the trial's run (its stage and arm), set when it is enqueued
IDENTITY_ATTRS = (KEY_ATTR, CONFIG_ATTR, LEVELS_ATTR, GROUP_ATTR, RETRAINS_ATTR, TAGS_ATTR)  # kept by every attempt of a trial
STATUS_ATTR = "trial_status"
WORKER_ATTR = "worker"
RUN_ID_ATTR = "mlflow_run_id"
DUPLICATE_ATTR = "duplicate_of"
EPOCHS_ATTR = "epochs_run"
RECOVERED_ATTR = "recovered"

# --- MLflow per-epoch metrics of the mechanism probes (study.training.probes): `<prefix><layer>`
GRAD_NORM_PREFIX = "grad_norm/"  # L2 norm of the loss gradient w.r.t. the layer's kernel
SATURATED_PREFIX = "saturated/"  # share of the layer's units that pass (almost) no gradient
PROBE_PREFIXES = (GRAD_NORM_PREFIX, SATURATED_PREFIX)
