"""The report's opening figure: a forest plot of every effect with its block interval.

Panels: the effect on the outcome over the whole grid (all trials, and among trials that learn); the same
inside the region near the top, on its own scale (effects there are a hundred times smaller than the
rescues of failing corners that dominate the whole grid); the effect on the share of trials that fail.
Thick bars: each effect's own 95% interval (unadjusted); thin whiskers: the simultaneous 95% interval over
the table (Bonferroni), the one that agrees with the Holm-corrected verdicts. One row per contrast (a level
vs its reference; inside the region the reference can differ), drawn from the tables the report shows.
A panel without its table (no failure rule, no learners, no region) is left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.report.figures.pyplot import plt, save
from study.report.format import VAL_ACCURACY, Outcome

KEYS = ["factor", "level", "reference"]


def forest_plot(pooled: pd.DataFrame, learners: pd.DataFrame | None, failures: pd.DataFrame | None, path: Path,
                region: pd.DataFrame | None = None, outcome: Outcome = VAL_ACCURACY) -> Path:
    """Each table: factor, level, reference, diff, ci_low, ci_high and, where present, ci_low_adj, ci_high_adj
    (fractions drawn in pp, or the `outcome`'s raw units)."""
    rows = pooled[KEYS + (["verdict"] if "verdict" in pooled else [])]
    if region is not None and not region.empty:
        extra = region[KEYS].merge(rows[KEYS], on=KEYS, how="left", indicator=True)
        rows = pd.concat([rows, extra[extra.pop("_merge") == "left_only"]], ignore_index=True)
    labels = [f"{r['factor']}: {r['level']} vs {r['reference']}"
              + (f" ({r['verdict']})" if str(r.get("verdict", "")).endswith("no-op") else "")
              for _, r in rows.iterrows()]
    y = np.arange(len(labels))[::-1]
    units = " (pp)" if outcome.percent else ""
    panels = [(f"whole grid: effect on {outcome.label}{units}", 3)]
    if region is not None:
        panels.append((f"region near the top: {outcome.label}{units}", 2))
    if failures is not None:
        panels.append(("effect on the failure rate (pp)", 2))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2, 0.45 * len(labels) + 1.9),
                             sharey=True, squeeze=False, gridspec_kw={"width_ratios": [w for _, w in panels]})
    axes = axes[0]
    scale = 100.0 if outcome.percent else 1.0
    both = learners is not None
    _series(axes[0], _aligned(rows, pooled), y + (0.12 if both else 0.0), "tab:blue", "o", "all trials", scale)
    if both:
        _series(axes[0], _aligned(rows, learners), y - 0.12, "tab:green", "s", "trials that learn", scale)
    if region is not None:
        _series(axes[1], _aligned(rows, region), y, "tab:orange", "^", "inside the region", scale)
    if failures is not None:
        _series(axes[-1], _aligned(rows, failures), y, "tab:red", "D", "share of trials that fail", 100.0)
    axes[0].set_yticks(y, labels, fontsize=8)
    for ax, (title, _) in zip(axes, panels):
        ax.set_xlabel(title, fontsize=8.5)
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Every effect, level vs reference, over blocks. Thick: each effect's own 95% interval "
                 "(unadjusted); thin: simultaneous 95% over the table (Bonferroni; agrees with the Holm verdicts)",
                 fontsize=8.5)
    return save(fig, path)


def _aligned(rows: pd.DataFrame, table: pd.DataFrame | None) -> pd.DataFrame:
    """`table`'s contrasts in the figure's row order (a contrast it lacks is nan)."""
    if table is None or table.empty:
        return rows[KEYS].assign(diff=np.nan, ci_low=np.nan, ci_high=np.nan, ci_low_adj=np.nan, ci_high_adj=np.nan)
    return rows[KEYS].merge(table.drop(columns=[c for c in ("verdict",) if c in table]), on=KEYS, how="left")


def _series(ax, table: pd.DataFrame, y: np.ndarray, colour: str, marker: str, label: str,  # noqa: ANN001
            scale: float) -> None:
    diff = scale * table["diff"].to_numpy(dtype=float)
    for low_name, high_name, width in (("ci_low_adj", "ci_high_adj", 0.8), ("ci_low", "ci_high", 2.4)):
        if low_name not in table:
            continue
        low = scale * table[low_name].to_numpy(dtype=float)
        high = scale * table[high_name].to_numpy(dtype=float)
        ax.hlines(y, low, high, color=colour, lw=width, alpha=0.9)
    ax.plot(diff, y, marker, color=colour, ms=4.5, label=label, ls="none")
