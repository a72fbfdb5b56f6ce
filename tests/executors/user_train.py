"""The conformance suite's `train:` function: the NumPy MLP of numpy_trainer, reporting through the reporter."""

from tests.executors.numpy_trainer import fit


def train(config, reporter):
    return fit(dict(config), reporter.data, lambda step, logs: reporter.epoch(step, **logs))
