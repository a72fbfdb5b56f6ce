"""The lesson's sections: its figures produced by the code the trials ran, and its first model beside ours.

- Initial-weight densities of normal vs Xavier vs He for n = 256 inputs, sampled
  from `study.training.lesson_mlp.hidden_initializer` (what every hidden Dense layer is built with).
- Learning-rate curves of every schedule in the study (study.report.sections.schedules), with the lesson's
  exercise schedule beside them when the study did not train it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from study.config import TrialConfig
from study.lesson import figures
from study.lesson.reference import LESSON_FIRST_MODEL
from study.report import format as fmt
from study.report.section import ReportContext
from study.report.sections.schedules import schedule_section
from study.training.backend import BackendError, select_backend
from study.training.schedules import EPOCH_SCHEDULES, planned_learning_rates

# The lesson's reported training loss / accuracy per epoch of its first model (LESSON_FIRST_MODEL).
LESSON_EPOCHS = {1: (1.1316, 0.6453), 5: (0.1801, 0.9474)}
INIT_NAMES = ("normal", "xavier", "he")
FAN_IN = 256
FAN_OUT = 256  # equal fan-out, so Xavier's variance 2 / (in + out) is the textbook 1 / n
# The lesson's exercise schedule: 3 warm-up epochs, cosine to epoch 30, peak 0.01.
LESSON_SHARK_FIN = TrialConfig(epochs=30, warmup_epochs=3, learning_rate=0.01)


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


def exercise_panels(configs: list[TrialConfig]) -> list[dict]:
    """The lesson's exercise schedule (the shark fin), planned by our schedule code, unless the study trained it."""
    if any(c.schedule == "warmup_cosine" and c.epochs == LESSON_SHARK_FIN.epochs for c in configs):
        return []
    panels = []
    for name in EPOCH_SCHEDULES:
        setup = LESSON_SHARK_FIN.replace(schedule=name)
        panels.append({"title": f"reference, not trained here: {name}, peak {setup.learning_rate:g}, "
                                f"warm-up {setup.warmup_epochs}, {setup.epochs} epochs (the lesson's exercise)",
                       "planned": planned_learning_rates(setup), "logged": None})
    return panels


def _initializer_name(name: str) -> str:
    return {"normal": "RandomNormal(0, 1)", "xavier": "GlorotUniform", "he": "HeNormal"}[name]


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
    """The lesson's figures (need no trials): initial weights, and every schedule of the study beside the
    lesson's exercise schedule (replaces the core's schedules section)."""

    def render(self, ctx: ReportContext) -> str:
        configs = [t.config for t in ctx.expected]
        return ("## The lesson's figures, from our code\n\n" + init_section(ctx.out, ctx.spec.base.backend) + "\n"
                + schedule_section(configs, ctx.tidy, ctx.curves, ctx.out, exercise_panels(configs)))


class LessonComparisonSection:
    """The lesson's per-epoch numbers beside ours, when the study ran its first model."""

    def render(self, ctx: ReportContext) -> str:
        return _lesson_comparison(ctx.tidy, ctx.curves, ctx.out) if not ctx.tidy.empty else ""
