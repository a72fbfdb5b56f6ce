"""The lesson's own figure: the initial weights its initializers draw, sampled from the code the trials ran
(its schedules and gradients are drawn by the core's sections, study.report.sections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
