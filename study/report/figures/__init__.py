"""Report figures drawn from the tables a section already shows (matplotlib, Agg)."""
