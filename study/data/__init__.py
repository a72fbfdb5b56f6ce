"""Datasets: find, verify and split the arrays a trial trains on (one registry entry per dataset)."""
