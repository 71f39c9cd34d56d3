"""Figures below the report layer: a PNG written atomically, and the loss curve a saved model
carries (``ModelLayout.LOSS_PLOT``).

Figures are built with ``matplotlib.figure.Figure`` (the Agg canvas), never through pyplot: saving
a model from a notebook neither switches the user's backend nor leaves a figure open.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .utils import atomic_path


def new_figure(**kwargs):
    """A matplotlib Figure on the Agg canvas, outside pyplot's figure manager."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def png_bytes(fig, dpi: int = 130) -> bytes:
    """The figure as PNG bytes (for a data URI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save_png(fig, path: Path, dpi: int = 130, tight: bool = True) -> Path:
    """Write the figure to ``path`` atomically (a crash leaves no partial image); ``tight``:
    crop to the drawn content (one more draw; not needed after ``tight_layout``)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return path


def plot_loss_curve(history: pd.DataFrame, path: Path, title: str = "") -> Path | None:
    """The training and validation loss per epoch of ``history`` (``history.csv``'s columns
    epoch, train_loss, val_loss) as a PNG at ``path``; None when there is no loss to draw."""
    if history is None or "train_loss" not in history or history["train_loss"].notna().sum() < 1:
        return None
    epoch = history["epoch"] if "epoch" in history else pd.Series(range(1, len(history) + 1))
    fig = new_figure(figsize=(5.5, 3.4))
    ax = fig.subplots()
    ax.plot(epoch, history["train_loss"], marker="o", ms=3, color="#0072B2", label="train")
    if "val_loss" in history and history["val_loss"].notna().any():
        ax.plot(epoch, history["val_loss"], "--", marker="s", ms=3, color="#D55E00", label="val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    ax.set_title(title or "Pretraining loss", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=110, tight=False)  # saved with every model: one draw
