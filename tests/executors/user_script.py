"""The conformance suite's `command:` script: the NumPy MLP of numpy_trainer as a process of its own.

It reads the trial's config from STUDY_TRIAL_CONFIG (JSON), its data through the framework's loader
(STUDY_DATA_DIR for MNIST), and logs each epoch with MLflow's fluent API: MLFLOW_RUN_ID in its
environment makes those metrics the trial's run's. The kept epoch's metrics are logged last, under
their final names. Exits 3 when STUDY_TEST_FAIL is set (the suite's failing command).
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mlflow  # noqa: E402

from study.data.splits import SplitCache  # noqa: E402
from tests.executors.numpy_trainer import fit  # noqa: E402

if os.environ.get("STUDY_TEST_FAIL"):
    print("loading the data...")
    print("ValueError: planted failure", file=sys.stderr)
    sys.exit(3)
values = json.loads(os.environ["STUDY_TRIAL_CONFIG"])
data = SplitCache(os.environ.get("STUDY_DATA_DIR")).get(values["dataset"], values["validation"],
                                                         values["train_subset"])


def report(step, logs):
    mlflow.log_metrics(logs, step=step)
    return False


final = fit(values, data, report)
mlflow.log_metrics({("final_" + k if k in ("val_accuracy", "val_loss", "accuracy", "loss") else k): v
                    for k, v in final.items()})
