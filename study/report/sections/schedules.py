"""The learning-rate schedules of a study, planned and logged: one figure and one table.

Every learning-rate setup among the study's configs: the per-epoch rate planned by study.training.schedules (the
functions the trainer's callbacks call) beside the rate each trial logged. A study with a companion may add
reference panels (study.lesson.sections: the lesson's exercise schedule).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study.config import TrialConfig
from study.report.figures.schedule_figures import learning_rate_curves
from study.report.section import ReportContext
from study.training.schedules import planned_learning_rates

SCHEDULE_FIELDS = ("schedule", "optimizer", "learning_rate", "warmup_epochs", "epochs", "plateau_factor",
                   "plateau_patience")


def schedule_setups(configs: list[TrialConfig]) -> list[TrialConfig]:
    """The distinct learning-rate setups among the study's configs (seed and model ignored)."""
    seen, out = set(), []
    for config in configs:
        key = tuple(getattr(config, f) for f in SCHEDULE_FIELDS)
        if key not in seen:
            seen.add(key)
            out.append(config)
    return sorted(out, key=lambda c: (c.schedule, c.optimizer, c.learning_rate))


def logged_rates(setup: TrialConfig, frame: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The `learning_rate` metric per epoch of the trials with this setup: mean, min, max, runs."""
    mask = pd.Series(True, index=frame.index)
    for name in SCHEDULE_FIELDS:
        if name in frame:
            mask &= frame[name].astype(str) == str(getattr(setup, name))
    runs = frame.loc[mask, "run_id"]
    data = curves[(curves["metric"] == "learning_rate") & curves["run_id"].isin(runs)]
    if data.empty:
        return pd.DataFrame(columns=["epoch", "mean", "min", "max", "runs"])
    return data.groupby("epoch")["value"].agg(["mean", "min", "max", "count"]).rename(
        columns={"count": "runs"}).reset_index()


def schedule_section(configs: list[TrialConfig], frame: pd.DataFrame, curves: pd.DataFrame, out: Path,
                     references: list[dict] | None = None) -> str:
    """Planned vs logged learning rate for every schedule setup, plus `references`: panels of setups not trained
    here that a companion shows beside them (the lesson's exercise schedule)."""
    panels, rows = [], []
    for setup in schedule_setups(configs):
        planned = planned_learning_rates(setup)
        logged = logged_rates(setup, frame, curves) if not frame.empty else pd.DataFrame()
        title = (f"{setup.schedule}: {setup.optimizer}, lr {setup.learning_rate:g}"
                 + (f", warm-up {setup.warmup_epochs}" if setup.schedule.startswith("warmup") else "")
                 + (f", factor {setup.plateau_factor:g}, patience {setup.plateau_patience}"
                    if setup.schedule == "plateau" else "") + f", {setup.epochs} epochs")
        panels.append({"title": title, "planned": planned, "logged": logged})
        for epoch in range(setup.epochs):
            hit = logged[logged["epoch"] == epoch] if not logged.empty else logged
            rows.append({"setup": title, "epoch": epoch + 1,
                         "planned": planned[epoch] if planned is not None else math.nan,
                         "logged_mean": float(hit["mean"].iloc[0]) if len(hit) else math.nan,
                         "logged_min": float(hit["min"].iloc[0]) if len(hit) else math.nan,
                         "logged_max": float(hit["max"].iloc[0]) if len(hit) else math.nan,
                         "trials": int(hit["runs"].iloc[0]) if len(hit) else 0})
    panels += references or []
    table = pd.DataFrame(rows)
    table.to_csv(out / "tables" / "learning_rates.csv", index=False)
    figure = learning_rate_curves(panels, out / "figures" / "learning_rates.png")
    checked = table.dropna(subset=["planned", "logged_mean"])
    if checked.empty:
        agreement = "No logged learning rates to compare with the plan yet."
    else:
        gap = ((checked[["logged_min", "logged_max"]].sub(checked["planned"], axis=0)).abs().max(axis=1)
               / checked["planned"].where(checked["planned"] > 0, 1.0)).max()
        agreement = (f"Across {len(checked)} (setup, epoch) cells with a planned rate, the logged rate of every "
                     f"trial differs from the plan by at most {100 * gap:.2g}% (float32 rounding).")
    return ("### Learning-rate schedules\n\n"
            "Every learning-rate setup of this study: the per-epoch rate planned by `study.training.schedules` (the same "
            "functions the trainer's `LearningRateScheduler` calls) and the rate each trial logged (metric "
            "`learning_rate`, read from the optimizer at the start of each epoch). `warmup_cosine` is the lesson's "
            "formula verbatim: Keras counts epochs from 0, so its first epoch trains at learning rate 0; "
            "`warmup_cosine_corrected` starts the warm-up at epoch 1. `plateau` reacts to val_loss, so it has no "
            f"plan, only logged values. {agreement} Per-epoch values: `tables/learning_rates.csv`.\n\n"
            f"![learning rates](figures/{figure.name})\n")


class SchedulesSection:
    """The schedules figure, when the study uses a schedule other than a constant rate."""

    def render(self, ctx: ReportContext) -> str:
        configs = [t.config for t in ctx.expected]
        if all(c.schedule == "constant" for c in configs):
            return ""
        return "## " + schedule_section(configs, ctx.tidy, ctx.curves, ctx.out).removeprefix("### ")
