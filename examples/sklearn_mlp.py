"""Your own training code, no Keras: scikit-learn's MLPClassifier as a trial (`train: examples.sklearn_mlp:train`).

The framework calls `train(config, reporter)` once per trial (run from the project's root, or put
this directory's parent on PYTHONPATH). `config` holds the trial's fields (`config.activation`,
`config.learning_rate`, `config.seed`, ...) and the spec's own hyperparameters (`config.alpha`);
`reporter.data` is the trial's data as the framework splits it (digits: 1,197 training, 300
validation and 300 test images); `reporter.epoch(...)` logs an epoch to the trial's MLflow run and
says when to stop. What it returns are the trial's final metrics: `val_accuracy` is required.
"""

import copy
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic"}  # the config's names -> scikit-learn's


def train(config, reporter):
    data = reporter.data
    x_train, x_val, x_test = (x.reshape(len(x), -1) for x in (data.x_train, data.x_val, data.x_test))
    classes = np.unique(data.y_train)
    model = MLPClassifier(hidden_layer_sizes=(config.units,) * config.hidden_layers,
                          activation=ACTIVATIONS[config.activation], alpha=config.alpha, solver="adam",
                          learning_rate_init=config.learning_rate, batch_size=config.batch_size,
                          random_state=config.seed)  # seeding is ours: the trial's seed
    kept, best_val_loss = None, np.inf
    for epoch in range(config.epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, data.y_train, classes=classes)  # one epoch of mini-batches
        val_loss = log_loss(data.y_val, model.predict_proba(x_val), labels=classes)
        metrics = {"loss": model.loss_, "accuracy": model.score(x_train, data.y_train), "val_loss": val_loss,
                   "val_accuracy": model.score(x_val, data.y_val)}
        if val_loss < best_val_loss:  # keep the epoch with the lowest validation loss, as the Keras executors do
            best_val_loss, kept = val_loss, (epoch, copy.deepcopy(model), metrics)
        if reporter.epoch(epoch, **metrics):  # True: stop now (Ctrl-C, or pruned while tuning)
            break
    epoch, model, metrics = kept
    return {**metrics, "best_epoch": epoch,
            "test_accuracy": model.score(x_test, data.y_test),
            "test_loss": log_loss(data.y_test, model.predict_proba(x_test), labels=classes),
            "params": sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)}
