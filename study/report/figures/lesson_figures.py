"""Figures of the lesson's own ideas, drawn from the code the trials ran (initializers, schedules) and from what
the trials measured (gradient norms per layer, study.analysis.gradients)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from study.report.figures.pyplot import plt, save

KDE_POINTS = 16_384  # the density is smooth long before this; the cost grows with points x grid


def initializer_kde(samples: dict[str, np.ndarray], fan_in: int, path: Path) -> Path:
    """Kernel density of initial weights per initializer, full range and zoomed in
    (std in the legend from the full sample, density from its first KDE_POINTS values)."""
    from scipy.stats import gaussian_kde

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, limit in zip(axes, (4.0, 0.4)):
        grid = np.linspace(-limit, limit, 400)
        for name, values in samples.items():
            density = gaussian_kde(values[:KDE_POINTS])(grid)
            ax.plot(grid, density, label=f"{name} (std {values.std():.3f})")
            ax.fill_between(grid, density, alpha=0.15)
        ax.set_xlabel("initial weight")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
        ax.set_title(f"weights in [-{limit}, {limit}]", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Initial hidden-layer weights for n = {fan_in} inputs (sampled from the model builder's "
                 "initializers)", fontsize=9)
    return save(fig, path)


def learning_rate_curves(panels: list[dict], path: Path) -> Path:
    """One panel per schedule: the planned per-epoch rate (our schedule code) and the
    rate logged during training (mean over trials, band = min..max)."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        planned = panel.get("planned")
        if planned is not None:
            ax.plot(np.arange(1, len(planned) + 1), planned, marker="o", color="tab:orange", lw=2,
                    label="planned (schedule code)")
        logged = panel.get("logged")
        if logged is not None and not logged.empty:
            epochs = logged["epoch"] + 1
            ax.plot(epochs, logged["mean"], marker="x", ls="--", color="tab:blue",
                    label=f"logged ({int(logged['runs'].max())} trials)")
            ax.fill_between(epochs, logged["min"], logged["max"], color="tab:blue", alpha=0.15)
        ax.set_title(textwrap.fill(panel["title"], 48), fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        peaks = [max(planned) if planned else 0.0]
        if logged is not None and not logged.empty:
            peaks.append(float(logged["max"].max()))
        ax.set_ylim(0, 1.12 * max(peaks) if max(peaks) > 0 else 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return save(fig, path)


def gradient_norms_by_layer(profile: pd.DataFrame, path: Path, title: str = "") -> Path:
    """The loss gradient's norm per layer (x: layer index from the input, log y), one line per level (sigmoid,
    relu) with its seed band (min..max over seeds), one panel per epoch: does the gradient vanish towards the
    input? `profile`: study.analysis.gradients.layer_profile."""
    epochs = sorted(profile["epoch"].unique())
    fig, axes = plt.subplots(1, max(1, len(epochs)), figsize=(4.6 * max(1, len(epochs)), 3.4), squeeze=False,
                             sharey=True)
    for ax, epoch in zip(axes.flat, epochs):
        part = profile[profile["epoch"] == epoch]
        for level, line in part.groupby("level", sort=True):
            line = line.sort_values("layer_index")
            seeds = int(line["seeds"].max())
            drawn, = ax.plot(line["layer_index"], line["mean"], marker="o", label=f"{level} ({seeds} seeds)")
            ax.fill_between(line["layer_index"], line["min"], line["max"], color=drawn.get_color(), alpha=0.2)
        names = part.drop_duplicates("layer_index").sort_values("layer_index")
        ax.set_xticks(names["layer_index"], names["layer"], rotation=30, fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("layer (input -> output)")
        ax.set_title(f"after epoch {int(epoch) + 1}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("gradient L2 norm (probe batch)")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(textwrap.fill(title, 100), fontsize=9)
    return save(fig, path)
