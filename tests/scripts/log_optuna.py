"""Log an Optuna grid search to MLflow through optuna-integration's MLflowCallback (it does not import `study`).

GridSampler over lr (3 levels) x optimizer (2) x repeat (4): each trial's seed is its `repeat`, stored as
the trial's user attribute `seed`, which the callback writes as an MLflow tag (so the seed is a tag, not a
param). The objective, logged as the metric val_accuracy, has a planted +5 pp for optimizer=adam, none for lr.

    python tests/scripts/log_optuna.py sqlite:///mlflow.db optuna-grid
"""

from __future__ import annotations

import sys

import numpy as np
import optuna
from optuna_integration.mlflow import MLflowCallback

SPACE = {"lr": [0.001, 0.01, 0.1], "optimizer": ["sgd", "adam"], "repeat": [0, 1, 2, 3]}


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_categorical("lr", SPACE["lr"])
    optimizer = trial.suggest_categorical("optimizer", SPACE["optimizer"])
    seed = trial.suggest_categorical("repeat", SPACE["repeat"])
    trial.set_user_attr("seed", seed)
    rng = np.random.default_rng([seed, SPACE["lr"].index(lr), SPACE["optimizer"].index(optimizer)])
    return 0.85 + 0.05 * (optimizer == "adam") + rng.normal(0, 0.005)


def main() -> None:
    tracking_uri, name = sys.argv[1], sys.argv[2]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler(SPACE, seed=0)
    study = optuna.create_study(study_name=name, direction="maximize", sampler=sampler)
    callback = MLflowCallback(tracking_uri=tracking_uri, metric_name="val_accuracy")
    study.optimize(objective, n_trials=3 * 2 * 4, callbacks=[callback])


if __name__ == "__main__":
    main()
