"""The lesson's studies as the synthesis reads them: each report's tables and its spec's budget."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study.data.registry import dataset_info
from study.spec.study_spec import StudySpec, load_spec

FIRST_MODEL_STUDY = "lesson_baseline"
TEXT = ("claim", "scope", "contrast", "condition", "measure", "unit", "verdict", "moderator", "holds", "reverses", "why")


@dataclass
class LessonStudy:
    name: str
    spec: StudySpec
    claims: pd.DataFrame  # tables/claims.csv (empty for a study with no factor)
    comparison: pd.DataFrame  # tables/lesson_comparison.csv (only where the study ran the lesson's first model)
    report: Path

    @property
    def budget(self) -> str:
        """What a verdict was reached under: epochs, network, training images, seeds, learning rates."""
        base = self.spec.base
        info = dataset_info(base.dataset)
        images = base.train_subset or (info.holdout_train_size if base.validation == "holdout" else info.train_size)
        rates = _rates(self.spec)
        return (f"{base.epochs} epochs, {base.hidden_layers}x{base.units}, {images:,} training images, "
                f"{len(self.spec.seeds)} seeds, {rates}")


def _rates(spec: StudySpec) -> str:
    """The learning rates per optimizer the study runs, and whether it sweeps them (or tunes them per arm)."""
    tune = spec.tune_each_arm
    if tune is not None and "learning_rate" in tune.space:
        rate = tune.space["learning_rate"]
        return f"lr tuned per arm ({tune.sampler}, {tune.trials} points, {rate.low:g} .. {rate.high:g})"
    found: dict[str, set[float]] = {}
    for trial in spec.unique_trials():
        found.setdefault(trial.config.optimizer, set()).add(trial.config.learning_rate)
    parts = [f"{name} " + "/".join(f"{r:g}" for r in sorted(rates)) for name, rates in sorted(found.items())]
    swept = any(len(r) > 1 for r in found.values())
    return "lr " + ", ".join(parts) + (" (swept)" if swept else " (one untuned rate each)")


def discover(reports: Path, specs: Path, names: list[str] | None = None) -> list[LessonStudy]:
    """The lesson's studies with a report: `names`, or every `lesson_*` spec in `specs` whose report exists."""
    if names is None:
        names = sorted(p.stem for p in specs.glob("lesson_*.yaml"))
    out = []
    for name in names:
        spec_path, report = specs / f"{name}.yaml", reports / name
        if not spec_path.is_file() or not (report / "README.md").is_file():
            continue
        out.append(LessonStudy(name, load_spec(spec_path), _read(report / "tables" / "claims.csv"),
                               _read(report / "tables" / "lesson_comparison.csv"), report))
    return out


def _read(path: Path) -> pd.DataFrame:
    """A table with its text columns' empty cells as "" (numbers stay numbers, missing ones nan)."""
    if not path.is_file():
        return pd.DataFrame()
    table = pd.read_csv(path)
    text = [c for c in table if c in TEXT or table[c].dtype == object or str(table[c].dtype).startswith("str")]
    table[text] = table[text].astype(object).where(table[text].notna(), "")
    return table


def learning_rate_share(study: LessonStudy, schedule: str) -> str:
    """`schedule`'s summed planned learning rate over the epochs as a share of the constant schedule's with the
    same optimizer and peak rate (from tables/learning_rates.csv): how much training a schedule gives."""
    path = study.report / "tables" / "learning_rates.csv"
    if not path.is_file():
        return ""
    rates = pd.read_csv(path)
    sums = rates.groupby("setup")["planned"].sum()
    shares = []
    for setup, total in sums.items():
        name, _, rest = str(setup).partition(": ")
        same = re.sub(r", warm-up \d+", "", rest)  # the constant setup with the same optimizer, rate and epochs
        constant = sums.get(f"constant: {same}")
        if name == schedule and constant:
            shares.append(f"{100 * total / constant:.0f}% ({rest})")
    return f"`{schedule}` gives {', '.join(shares)} of the constant rate's summed learning rate" if shares else ""
