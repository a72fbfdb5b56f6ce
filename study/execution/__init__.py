"""Running a study: the worker loop, trial sources (grid, Optuna), local worker processes, launch."""
