"""The learning-rate figure of the schedules section (study.report.sections.schedules)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from study.report.figures.pyplot import plt, save


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
