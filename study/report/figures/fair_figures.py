"""Each arm's sensitivity curve: val accuracy against the tuned value, with the tuning seeds' band."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from study.report.figures.pyplot import plt, save

PRIMARY = "final_val_accuracy"


def sensitivity_curves(tuning: pd.DataFrame, arms: pd.DataFrame, name: str, log: bool, fixed: float,
                       path: Path) -> Path:
    """One panel per arm: the mean over the tuning seeds (line), their range (band), each seed (dots), the
    chosen value (star) and the spec's fixed value (dashed); over several tuned fields, the others averaged."""
    labels = list(arms["arm"])
    columns = min(4, len(labels))
    rows = math.ceil(len(labels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.5 * rows), squeeze=False, sharey=True)
    for ax, label in zip(axes.flat, labels):
        mine = tuning[tuning["arm"] == label].assign(score=lambda f: 100 * f[PRIMARY].fillna(0.0))
        by_seed = mine.groupby([name, "seed"])["score"].mean().reset_index()
        curve = by_seed.groupby(name)["score"].agg(["mean", "min", "max"]).sort_index()
        ax.fill_between(curve.index, curve["min"], curve["max"], alpha=0.25, color="tab:blue", lw=0)
        ax.plot(curve.index, curve["mean"], color="tab:blue", marker="o", ms=3, lw=1.2)
        ax.scatter(by_seed[name], by_seed["score"], s=6, color="tab:gray", zorder=3)
        row = arms[arms["arm"] == label].iloc[0]
        if name in row and pd.notna(row.get(name)) and row[name] in curve.index:
            ax.scatter([row[name]], [curve.loc[row[name], "mean"]], marker="*", s=90, color="tab:red", zorder=4)
        ax.axvline(fixed, color="black", ls="--", lw=0.8)
        if log:
            ax.set_xscale("log")
        ax.set_title(label, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("val accuracy (%)", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(name, fontsize=7)
    fig.suptitle(f"Each arm's val accuracy against {name} on the tuning seeds (band: their range; star: chosen; "
                 "dashed: the spec's fixed value)", fontsize=8)
    return save(fig, path)
