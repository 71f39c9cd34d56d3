"""Guess what kind of values an expression matrix holds, so preprocessing can do the right thing."""

from __future__ import annotations

from typing import Literal

import numpy as np

Scale = Literal["counts", "log", "linear", "standardized"]


def guess_scale(X: np.ndarray, max_check: int = 200_000) -> Scale:
    """Classify values as raw counts, log scale, other linear (TPM/FPKM) or already standardised.

    Rules (documented in the README): any negative value -> ``standardized``; all integers with a
    maximum above 100 -> ``counts``; maximum at most 50 -> ``log`` (log2 of counts/TPM rarely exceeds
    ~25); otherwise ``linear`` (non-integer, large range: TPM, FPKM, CPM).
    """
    flat = np.asarray(X).ravel()
    if flat.size > max_check:  # a deterministic strided sample is enough to classify
        flat = flat[:: flat.size // max_check + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return "linear"
    if flat.min() < 0:
        return "standardized"
    vmax = float(flat.max())
    if vmax > 100 and np.all(flat == np.round(flat)):
        return "counts"
    if vmax <= 50:
        return "log"
    return "linear"
