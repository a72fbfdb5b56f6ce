"""Matplotlib figures shared by trial artifacts and reports (Agg backend, no screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(history: dict[str, list[float]], title: str, path: Path) -> Path:
    """Loss and accuracy per epoch, training vs validation, for one trial."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for name, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        if history.get(name):
            ax.plot(epochs, history[name], marker="o", label="train")
        if history.get(f"val_{name}"):
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
