"""Report figures drawn from analysis tables (matplotlib, Agg; no MLflow, no Keras).

Each function takes the table a report section already shows, so a figure never
says something its table does not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from matplotlib.ticker import MaxNLocator

from study.report.figures.pyplot import plt, save

def seed_band_curves(bands: dict[str, pd.DataFrame], factor: str, labels: list[str], path: Path) -> Path:
    """One panel per metric: per level, the mean over seeds and the seed min-max band."""
    fig, axes = plt.subplots(1, len(bands), figsize=(5.2 * len(bands), 3.6), squeeze=False)
    for ax, (metric, table) in zip(axes[0], bands.items()):
        for label in labels:
            sub = table[table["level"] == label].sort_values("epoch")
            if sub.empty:
                continue
            epochs = sub["epoch"] + 1
            ax.plot(epochs, sub["mean"], marker="o", label=f"{label} ({int(sub['seeds'].max())} seeds)")
            ax.fill_between(epochs, sub["min"], sub["max"], alpha=0.18)
        if metric.endswith("loss") and (table["max"] > 0).all() and table["max"].max() > 20 * table["min"].min():
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{factor}: mean over seeds, band = min..max of the seeds (each seed averaged over the "
                 "other factors first)", fontsize=8)
    return save(fig, path)


def importance_bars(ranking: pd.DataFrame, path: Path, outcome: str = "val accuracy") -> Path:
    """Total-effect share per factor, stacked: main effect, two-way terms, 3-way and higher terms."""
    table = ranking.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(table) + 1.3))
    y = np.arange(len(table))
    left = np.zeros(len(table))
    for column, text, alpha in (("main_share", "main effect", 1.0), ("two_way_share", "two-way terms it is in", 0.55),
                                ("higher_share", "3-way and higher terms it is in", 0.25)):
        values = 100 * table[column].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color="tab:blue", alpha=alpha, label=text)
        left += values
    ax.set_yticks(y, table["factor"])
    ax.set_xlabel(f"% of the variance of {outcome} (total effect: every term the factor is in)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def interaction_heatmap(cells: pd.DataFrame, row_factor: str, column_factor: str, metric: str,
                        share: float, path: Path, percent: bool = True) -> Path:
    """Mean metric for every pair of levels (other factors and seeds pooled), annotated (in % when `percent`)."""
    values = (100 if percent else 1) * cells.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * values.shape[1] + 2.4, 0.8 * values.shape[0] + 1.6))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in cells.columns])
    ax.set_yticks(range(values.shape[0]), [str(i) for i in cells.index])
    ax.set_xlabel(column_factor)
    ax.set_ylabel(row_factor)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if math.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.1f}" if percent else f"{values[i, j]:.3g}", ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] < middle else "black")
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(f"{metric}{' (%)' if percent else ''}, {row_factor} x {column_factor}: {100 * share:.1f}% of variance", fontsize=8)
    return save(fig, path)


def ablation_path_plot(path_table: pd.DataFrame, metric: str, out: Path) -> Path:
    """Mean metric of each config on the path with its 95% interval over seeds."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(path_table) + 2), 3.6))
    x = np.arange(len(path_table))
    mean = 100 * path_table["mean"].to_numpy(dtype=float)
    low = 100 * path_table["ci_low"].to_numpy(dtype=float)
    high = 100 * path_table["ci_high"].to_numpy(dtype=float)
    errors = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
    ax.errorbar(x, mean, yerr=errors, marker="o", capsize=4)
    labels = ["start"] + [f.replace(": ", "\n") for f in path_table["flip"].iloc[1:]]
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
    ax.set_title("Ablation path: mean and 95% t interval over seeds", fontsize=9)
    return save(fig, out)
