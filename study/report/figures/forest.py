"""The report's opening figure: a forest plot of every effect with its block interval.

Left: the effect on val accuracy, over all trials (pooled) and among trials that learn. Right: the
effect on the share of trials that do not learn. One row per level vs its reference, drawn from the
same tables the effects section shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study.report.figures.pyplot import plt, save
from study.report.format import VAL_ACCURACY, Outcome

SERIES = (("pooled", "all trials", "tab:blue", "o"), ("learners", "trials that learn", "tab:green", "s"))


def forest_plot(pooled: pd.DataFrame, learners: pd.DataFrame | None, failures: pd.DataFrame | None, path: Path,
                outcome: Outcome = VAL_ACCURACY) -> Path:
    """Each table: factor, level, reference, diff, ci_low, ci_high (fractions drawn in pp, or the `outcome`'s
    raw units); without `failures` (no rule for failing) one panel, without `learners` the pooled effects only."""
    labels = [f"{r['factor']}: {r['level']} vs {r['reference']}"
              + (f" ({r['verdict']})" if str(r.get("verdict", "")).endswith("no-op") else "")
              for _, r in pooled.iterrows()]
    y = np.arange(len(labels))[::-1]
    ratios = [3, 2] if failures is not None else [1]
    fig, axes = plt.subplots(1, len(ratios), figsize=(11, 0.42 * len(labels) + 1.6),
                             sharey=True, squeeze=False, gridspec_kw={"width_ratios": ratios})
    axes = axes[0]
    tables = {"pooled": pooled, "learners": learners}
    scale = 100.0 if outcome.percent else 1.0
    for offset, (key, text, colour, marker) in zip((0.14, -0.14), SERIES):
        if tables[key] is not None:
            _series(axes[0], tables[key], y + (offset if learners is not None else 0.0), colour, marker, text, scale)
    if failures is not None:
        _series(axes[1], failures, y, "tab:red", "D", "share of trials that do not learn")
        axes[1].set_xlabel("effect on the failure rate (pp)")
    unit = str(pooled["unit"].iloc[0]) if "unit" in pooled and len(pooled) else "blocks"
    axes[0].set_xlabel(f"effect on {outcome.label}{' (pp)' if outcome.percent else ''}, 95% interval over {unit}")
    axes[0].set_yticks(y, labels, fontsize=8)
    for ax in axes:
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Every effect: level vs reference, one difference per block (the other factors' levels, seeds "
                 "averaged; per seed when the study has one block)", fontsize=9)
    return save(fig, path)


def _series(ax, table: pd.DataFrame, y: np.ndarray, colour: str, marker: str, label: str,  # noqa: ANN001
            scale: float = 100.0) -> None:
    diff = scale * table["diff"].to_numpy(dtype=float)
    low = scale * table["ci_low"].to_numpy(dtype=float)
    high = scale * table["ci_high"].to_numpy(dtype=float)
    errors = np.vstack([np.nan_to_num(diff - low), np.nan_to_num(high - diff)])
    ax.errorbar(diff, y[: len(diff)], xerr=errors, fmt=marker, color=colour, ms=4, capsize=2, lw=1, label=label)
