"""Which kind of spec a file is: `worker` and `status` take an ablation or a tuning spec."""

from __future__ import annotations

from pathlib import Path

from study.config import TrialConfig
from study.spec.schema import read_yaml
from study.spec.study_spec import StudySpec
from study.spec.tune_spec import TuneSpec


def is_tune_spec(path: Path) -> bool:
    """A tuning spec has a search space."""
    raw = read_yaml(path)
    return isinstance(raw, dict) and "search_space" in raw


def data_configs(spec: StudySpec | TuneSpec) -> list[TrialConfig]:
    """The configs whose data a spec trains on: an ablation's trials, a tuning study's base."""
    return [t.config for t in spec.unique_trials()] if isinstance(spec, StudySpec) else [spec.base]
