"""Executors: take a batch of trial configs, train them, return their results (study.training.executors.base)."""
