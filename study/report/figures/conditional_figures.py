"""Figures of conditional effects: small multiples of every contrast within each moderator level, and the
strongest higher-order term's cell means."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from study.report.figures.pyplot import plt, save


def conditional_small_multiples(table: pd.DataFrame, path: Path) -> Path:
    """One panel per contrast (level vs reference); a row per moderator level with its sub-effect and 95%
    interval; rows of a moderator across which the sign changes are red."""
    contrasts = list(dict.fromkeys(zip(table["factor"], table["level"], table["reference"])))
    columns = min(3, len(contrasts))
    rows = math.ceil(len(contrasts) / columns)
    height = max(len(table[(table["factor"] == f) & (table["level"] == lv)]) for f, lv, _ in contrasts)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, max(2.6, 0.22 * height * rows + 1.2 * rows)),
                             squeeze=False)
    for ax, (factor, level, reference) in zip(axes.flat, contrasts):
        sub = table[(table["factor"] == factor) & (table["level"] == level)].reset_index(drop=True)
        y = np.arange(len(sub))[::-1]
        colours = ["tab:red" if flag else "tab:blue" for flag in sub["sign_change"]]
        diff, low, high = (100 * sub[c].to_numpy(dtype=float) for c in ("effect", "ci_low", "ci_high"))
        ax.hlines(y, low, high, colors=colours, lw=2)
        ax.scatter(diff, y, c=colours, s=14, zorder=3)
        ax.set_yticks(y, [f"{m}={v}" for m, v in zip(sub["moderator"], sub["moderator_level"])], fontsize=6.5)
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{factor}: {level} vs {reference}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("Δ val accuracy (pp)", fontsize=7)
    for ax in list(axes.flat)[len(contrasts):]:
        ax.set_visible(False)
    fig.suptitle("Each contrast within each level of every other factor (95% interval over blocks); red: the "
                 "sign changes across that moderator", fontsize=9)
    return save(fig, path)


def higher_order_plot(cells: pd.DataFrame, members: tuple[str, ...], share: float, path: Path) -> Path:
    """Mean val accuracy in each cell of a term of order >= 3: x = the first member's levels, one line per
    level of the second, one panel per combination of the rest."""
    x_factor, line_factor, *panel_factors = members
    panels = list(cells.groupby(panel_factors, sort=False)) if panel_factors else [((), cells)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (key, sub) in zip(axes[0], panels):
        key = key if isinstance(key, tuple) else (key,)
        for level, line in sub.groupby(line_factor, sort=False):
            ax.plot(line[x_factor].astype(str), 100 * line["mean"], marker="o", label=f"{line_factor}={level}")
        ax.set_title(", ".join(f"{f}={v}" for f, v in zip(panel_factors, key)), fontsize=8)
        ax.set_xlabel(x_factor)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("mean val accuracy (%)")
    fig.suptitle(f"The strongest higher-order term: {' x '.join(members)} ({100 * share:.1f}% of the variance)\n"
                 "mean over the other factors and seeds", fontsize=9)
    return save(fig, path)
