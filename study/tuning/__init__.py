"""Optuna glue for tuning studies: samplers, pruners, the study's identity and first points."""
