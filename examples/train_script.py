"""A training script of your own, run per trial by `command:` (examples/script_digits.yaml); it knows nothing
of the framework: it reads its options, trains, and logs with MLflow.

The framework runs it as `python examples/train_script.py --learning-rate {learning_rate} ...` with the
trial's MLflow run in its environment (MLFLOW_RUN_ID, MLFLOW_TRACKING_URI), so `mlflow.log_metric`
lands in the trial's run: each epoch's metrics (charted live, fed to Optuna's pruner when tuning), then
the final ones. The run's latest `val_accuracy` is the trial's result; a non-zero exit is a failed trial.
Run alone, it logs to a run of its own.
"""

import argparse
import warnings

import mlflow
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--learning-rate", type=float, default=0.01)
parser.add_argument("--alpha", type=float, default=1e-4)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

x, y = load_digits(return_X_y=True)
x_train, x_rest, y_train, y_rest = train_test_split(x / 16.0, y, test_size=600, random_state=0, stratify=y)
x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=300, random_state=0, stratify=y_rest)
model = SGDClassifier(loss="log_loss", alpha=args.alpha, learning_rate="constant", eta0=args.learning_rate,
                      random_state=args.seed)
for epoch in range(args.epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.partial_fit(x_train, y_train, classes=list(range(10)))
    mlflow.log_metrics({"accuracy": model.score(x_train, y_train), "val_accuracy": model.score(x_val, y_val)},
                       step=epoch)
mlflow.log_metric("test_accuracy", model.score(x_test, y_test))
