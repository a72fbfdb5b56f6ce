"""The analysis of a study's trials: effects, claims (a companion's), the adaptive design's decisions, the tables the
report shows."""
