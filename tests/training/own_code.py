"""Training functions of a user's own for the function executor's tests (`train: tests.training.own_code:...`)."""

import math

SEEN = []  # what each call saw: the config's values by attribute and by key, and the data's size


def train(config, reporter):
    SEEN.append((config.seed, config["alpha"], config.learning_rate, len(reporter.data.x_train)))
    stopped = False
    for epoch in range(config.epochs):
        stopped = reporter.epoch(epoch, loss=1.0 / (epoch + 1), val_accuracy=0.5 + 0.1 * epoch)
        if stopped:
            break
    return {"val_accuracy": 0.5 + config.alpha, "val_loss": 0.7, "test_accuracy": 0.6, "own_metric": 3}


def nan_loss(config, reporter):
    reporter.epoch(0, loss=math.nan, val_accuracy=0.1)
    return {"val_accuracy": 0.1, "loss": math.nan}


def returns_a_list(config, reporter):
    return [0.5]


def forgets_val_accuracy(config, reporter):
    return {"accuracy": 0.9}


def three_arguments(config, reporter, extra):
    return {"val_accuracy": 0.5}
