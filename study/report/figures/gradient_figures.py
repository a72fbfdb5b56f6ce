"""The gradients section's figure (study.report.sections.gradients): the loss gradient's norm per layer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from study.report.figures.pyplot import plt, save


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
