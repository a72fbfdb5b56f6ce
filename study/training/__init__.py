"""What a trial computes: model, optimizer, schedules, callbacks, and the executors that train trials.

Modules here that import Keras must be imported only after study.training.backend has
chosen the backend; study.training.executors.registry names them without importing them.
"""
