"""The lesson's sections: its figures produced by the code the trials ran, and its first model beside ours.

- Initial-weight densities of normal vs Xavier vs He for n = 256 inputs, sampled
  from `study.training.lesson_mlp.hidden_initializer` (what every hidden Dense layer is built with).
- Learning-rate curves of every schedule in the study from `study.training.schedules`
  (what the trainer's callbacks call), beside the rate each trial logged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.reference import LESSON_FIRST_MODEL
from study.config import TrialConfig
from study.report import format as fmt
from study.report.figures import lesson_figures as figures
from study.report.section import ReportContext
from study.training.backend import BackendError, select_backend
from study.training.schedules import EPOCH_SCHEDULES, planned_learning_rates

# The lesson's reported training loss / accuracy per epoch of its first model (LESSON_FIRST_MODEL).
LESSON_EPOCHS = {1: (1.1316, 0.6453), 5: (0.1801, 0.9474)}
INIT_NAMES = ("normal", "xavier", "he")
FAN_IN = 256
FAN_OUT = 256  # equal fan-out, so Xavier's variance 2 / (in + out) is the textbook 1 / n
# The lesson's exercise schedule: 3 warm-up epochs, cosine to epoch 30, peak 0.01.
LESSON_SHARK_FIN = TrialConfig(epochs=30, warmup_epochs=3, learning_rate=0.01)
SCHEDULE_FIELDS = ("schedule", "optimizer", "learning_rate", "warmup_epochs", "epochs", "plateau_factor",
                   "plateau_patience")


def theoretical_std(name: str, fan_in: int = FAN_IN, fan_out: int = FAN_OUT) -> float:
    return {"normal": 1.0, "xavier": math.sqrt(2 / (fan_in + fan_out)), "he": math.sqrt(2 / fan_in)}[name]


def initializer_samples(seed: int = 0, fan_in: int = FAN_IN, fan_out: int = FAN_OUT) -> dict[str, np.ndarray]:
    """Draw a fan_in x fan_out kernel from each hidden initializer (Keras must be importable)."""
    import keras  # backend-selection import: init_section chose the backend first

    from study.training.lesson_mlp import hidden_initializer

    return {name: np.asarray(keras.ops.convert_to_numpy(hidden_initializer(name, seed=seed)((fan_in, fan_out))),
                             dtype=float).ravel()
            for name in INIT_NAMES}


def init_section(out: Path, backend: str) -> str:
    """The KDE figure and a table of sampled vs theoretical standard deviations."""
    try:
        try:
            select_backend(backend)
        except BackendError:
            pass  # Keras already runs another backend in this process: sample with that one
        samples = initializer_samples()
    except Exception as exc:  # noqa: BLE001 - the rest of the report must not depend on Keras importing
        return f"### Initial weights\n\nNot drawn: Keras could not sample the initializers ({type(exc).__name__}: {exc}).\n"
    figure = figures.initializer_kde(samples, FAN_IN, out / "figures" / "init_weights_kde.png")
    table = pd.DataFrame([{"init": name, "keras initializer": _initializer_name(name),
                           "sampled std": values.std(), "theoretical std": theoretical_std(name),
                           "sampled min": values.min(), "sampled max": values.max()}
                          for name, values in samples.items()])
    table.to_csv(out / "tables" / "init_weights.csv", index=False)
    return ("### Initial weights: normal vs Xavier vs He, n = 256\n\n"
            f"A {FAN_IN} x {FAN_OUT} kernel drawn (seed 0) from each initializer our model builder gives the hidden "
            "layers (`study.training.lesson_mlp.hidden_initializer`); kernel density estimates (scipy `gaussian_kde`). The left "
            "panel shows the lesson's point: plain N(0, 1) weights are about "
            f"{theoretical_std('normal') / theoretical_std('xavier'):.0f} times wider than Xavier's and "
            f"{theoretical_std('normal') / theoretical_std('he'):.0f} times wider than He's (standard deviations "
            "below); the right panel zooms in on those two.\n\n"
            f"![initial weights](figures/{figure.name})\n\n" + table.to_markdown(index=False, floatfmt=".4f") + "\n")


def _initializer_name(name: str) -> str:
    return {"normal": "RandomNormal(0, 1)", "xavier": "GlorotUniform", "he": "HeNormal"}[name]


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
                     lesson: bool = True) -> str:
    """Planned vs logged learning rate for every schedule setup, plus (`lesson`) the lesson's shark fin."""
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
    if lesson and not any(s.schedule == "warmup_cosine" and s.epochs == LESSON_SHARK_FIN.epochs for s in configs):
        for name in EPOCH_SCHEDULES:
            setup = LESSON_SHARK_FIN.replace(schedule=name)
            panels.append({"title": f"reference, not trained here: {name}, peak {setup.learning_rate:g}, "
                                    f"warm-up {setup.warmup_epochs}, {setup.epochs} epochs (the lesson's exercise)",
                           "planned": planned_learning_rates(setup), "logged": None})
    table = pd.DataFrame(rows)
    table.to_csv(out / "tables" / "learning_rates.csv", index=False)
    figure = figures.learning_rate_curves(panels, out / "figures" / "learning_rates.png")
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


def _lesson_comparison(frame: pd.DataFrame, curves: pd.DataFrame, out: Path) -> str:
    """The lesson's per-epoch training table beside ours, when the study ran its first model."""
    mask = pd.Series(True, index=frame.index)
    for name, value in LESSON_FIRST_MODEL.items():
        mask &= frame[name].isna() if value is None else frame[name] == value
    runs = frame[mask & (frame["epochs"] >= 5)]
    if runs.empty:
        return ""
    train = curves[curves["run_id"].isin(runs["run_id"]) & curves["metric"].isin(["loss", "accuracy"])]
    stats = train.groupby(["metric", "epoch"])["value"].agg(["mean", "std", "min", "max", "count"]).reset_index()
    rows = []
    for epoch in range(1, 6):
        lesson = LESSON_EPOCHS.get(epoch)
        row = {"epoch": epoch,
               "lesson loss": f"{lesson[0]:.4f}" if lesson else "",
               "lesson accuracy": f"{lesson[1]:.4f}" if lesson else ""}
        for metric in ("loss", "accuracy"):
            s = stats[(stats["metric"] == metric) & (stats["epoch"] == epoch - 1)]
            if not s.empty:
                row[f"ours {metric} (mean ± std)"] = f"{s['mean'].iloc[0]:.4f} ± {s['std'].fillna(0).iloc[0]:.4f}"
                row[f"ours {metric} [min, max]"] = f"[{s['min'].iloc[0]:.4f}, {s['max'].iloc[0]:.4f}]"
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "tables" / "lesson_comparison.csv", index=False)
    last = stats[(stats["metric"] == "accuracy") & (stats["epoch"] == 4)]
    verdict = ""
    if not last.empty:
        low, high, mean = last["min"].iloc[0], last["max"].iloc[0], last["mean"].iloc[0]
        lesson_acc = LESSON_EPOCHS[5][1]
        verdict = (f"\nEpoch-5 training accuracy: ours {mean:.4f} (seeds range {low:.4f} to {high:.4f}), the "
                   f"lesson's {lesson_acc:.4f}, a difference of {100 * (mean - lesson_acc):+.2f} pp"
                   f"; {_seed_range_text(lesson_acc, low, high, int(last['count'].iloc[0]))}. "
                   "The lesson ran once on another Keras/TensorFlow version, so its random initialisation "
                   "and shuffling differ from any of our seeds.\n")
    return ("## The lesson's first model, ours beside the lesson's\n\n"
            f"Training loss and accuracy per epoch of the lesson's first model (4x32 ReLU, Xavier, SGD lr 0.01, "
            f"batch 32, all 60k training images), over {len(runs)} seed(s) of ours. The lesson reports one run "
            "(epochs 1 and 5).\n\n" + fmt.markdown_table(table) + "\n" + verdict)


def _seed_range_text(lesson: float, low: float, high: float, seeds: int) -> str:
    """Where the lesson's single run lies against our seeds: a value outside all of them is worth saying."""
    if lesson > high:
        return f"the lesson's {lesson:.4f} lies above all {seeds} of our seeds"
    if lesson < low:
        return f"the lesson's {lesson:.4f} lies below all {seeds} of our seeds"
    return "the lesson lies inside our seed range"


class LessonFiguresSection:
    """The lesson's figures (need no trials): initial weights and every schedule of the study."""

    def render(self, ctx: ReportContext) -> str:
        configs = [t.config for t in ctx.expected]
        if not ctx.lesson:  # a study of your own: only the schedules (the framework's), when it uses one
            if all(c.schedule == "constant" for c in configs):
                return ""
            return "## " + schedule_section(configs, ctx.tidy, ctx.curves, ctx.out, lesson=False).removeprefix("### ")
        return ("## The lesson's figures, from our code\n\n" + init_section(ctx.out, ctx.spec.base.backend) + "\n"
                + schedule_section(configs, ctx.tidy, ctx.curves, ctx.out))


class LessonComparisonSection:
    """The lesson's per-epoch numbers beside ours, when the study ran its first model."""

    def render(self, ctx: ReportContext) -> str:
        return _lesson_comparison(ctx.tidy, ctx.curves, ctx.out) if ctx.lesson and not ctx.tidy.empty else ""
