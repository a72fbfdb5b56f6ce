"""Statistics of a study, as pure functions on tidy trial DataFrames (one module per method).

Input: one row per trial with a `level_<factor>` column per factor (level labels
as strings), a `seed` column, a `status` column and metric columns. Nothing here
touches MLflow or Keras, so every function is tested on synthetic data with
planted effects.

Choices (stated again in every report):
- Per-config interval over seeds: Student t (3 seeds are too few for a bootstrap).
- Main effect of a level: mean of paired differences to the reference level, one
  pair per combination of the other factors' levels and seed; 95% t interval on
  those differences; two-sided Wilcoxon signed-rank test (Pratt's treatment of
  zero differences); Holm correction over every level-vs-reference comparison of
  the metric; P(level > reference) = share of pairs where the level wins, ties
  counting half (the probability of improvement of Bouthillier et al., 2021).
- Interactions and importance: ANOVA (statsmodels OLS, type II sums of squares)
  with all main effects and two-way interactions; share of variance = SS / total SS.
- Ablation path (Fawcett & Hoos, 2016) read off the trials: greedy, one flip at a
  time from the source config to the target config, best mean first.
"""

