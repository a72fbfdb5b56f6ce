"""Which kind of spec a file is: `worker` and `status` take an ablation or a tuning spec."""

from __future__ import annotations

from pathlib import Path

from study.spec.reading import read_yaml


def is_tune_spec(path: Path) -> bool:
    """A tuning spec has a search space."""
    raw = read_yaml(path)
    return isinstance(raw, dict) and "search_space" in raw
