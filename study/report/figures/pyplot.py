"""Matplotlib for reports: the Agg backend (no screen), one DPI, one way to save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 90

__all__ = ["plt", "save", "DPI"]


def save(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
