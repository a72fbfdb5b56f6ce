"""Statistics of a study, as pure functions on tidy trial DataFrames (one module per method).

Input: one row per trial with a `level_<factor>` column per factor (level labels
as strings), a `seed` column, a `status` column and metric columns. Nothing here
touches MLflow or Keras, so every function is tested on synthetic data with
planted effects.

Choices (stated again in every report's "How the numbers are computed"):
- Per-config interval over seeds: Student t (3 seeds are too few for a bootstrap).
- Effects (blocks.py): the unit is the block, a combination of the other factors' levels; seeds are
  averaged within a block first; t interval and t test over blocks, Holm over a table; a separate
  seed-noise interval with the blocks held fixed; P(level > ref) over blocks with a Wilson interval.
- Failures (failures.py): a trial that does not learn is its own outcome; effects on the failure rate
  and among learners, by block.
- No-ops (noop.py): counts of bit-identical pairs and of trials whose learning rate changed.
- Decomposition (factorial.py): the saturated factorial, seed noise as the error term, Holm over terms;
  importance by total effect.
- Power (power.py, intervals.detectable_difference): the smallest difference detected with 80% power.
- Ablation path (path.py, Fawcett & Hoos 2016) read off the trials: greedy, one flip at a
  time from the source config to the target config, best mean first.
"""
