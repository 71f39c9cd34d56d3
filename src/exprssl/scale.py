"""Guess what kind of values an expression matrix holds, so preprocessing can do the right thing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .validation import describe_position

Scale = Literal["counts", "log", "linear", "standardized"]
log = logging.getLogger("exprssl")
# Negative values switch CPM and log2 off for the whole matrix. When they are at most this
# fraction of the cells and the other values look like counts or TPM, they are more likely a
# glitch than standardised data (about half of z-scores are negative), so a warning says so.
FEW_NEGATIVES = 0.01
_DESCRIPTIONS = {"counts": "raw counts", "linear": "linear-scale values (TPM/FPKM)"}


def _nonnegative_scale(flat: np.ndarray) -> Scale:
    vmax = float(flat.max()) if flat.size else 0.0
    if vmax > 100 and np.all(flat == np.round(flat)):
        return "counts"
    if vmax <= 50:
        return "log"
    return "linear"


def guess_scale(
    X: np.ndarray,
    max_check: int = 200_000,
    *,
    source: str = "data",
    samples: Sequence | None = None,
    genes: Sequence | None = None,
) -> Scale:
    """Classify values as raw counts, log scale, other linear (TPM/FPKM) or already standardised.

    Rules (documented in the README): any negative value -> ``standardized``; all integers with a
    maximum above 100 -> ``counts``; maximum at most 50 -> ``log`` (log2 of counts/TPM rarely
    exceeds ~25); otherwise ``linear`` (non-integer, large range: TPM, FPKM, CPM). The negative
    check sees every cell; the others a strided sample of ``max_check`` values. A few negative cells
    in data that otherwise look like counts or TPM log a warning naming ``source`` and the first one
    (with ``samples`` / ``genes`` as names when given).
    """
    X = np.asarray(X)
    flat = X.ravel()
    checked = flat[:: flat.size // max_check + 1] if flat.size > max_check else flat
    checked = checked[np.isfinite(checked)]
    if checked.size == 0:
        return "linear"
    if np.nanmin(flat) >= 0:
        return _nonnegative_scale(checked)
    rest = _nonnegative_scale(checked[checked >= 0])
    if rest in _DESCRIPTIONS:
        _warn_few_negatives(X, rest, source, samples, genes)
    return "standardized"


def _warn_few_negatives(X: np.ndarray, rest: Scale, source: str, samples, genes) -> None:
    negative = X < 0
    n = int(np.count_nonzero(negative))
    if n > FEW_NEGATIVES * X.size:
        return
    first = np.argwhere(negative)[0]
    where = describe_position(*first, samples, genes) if X.ndim == 2 else f"index {first[0]}"
    log.warning(
        "%s: %d negative value%s (first %g at %s) in data that otherwise look like %s, so the "
        "whole matrix is treated as already standardised (no CPM, no log2); fix those cells, or "
        "set the preprocessing options library_size and log explicitly",
        source,
        n,
        "" if n == 1 else "s",
        X[tuple(first)],
        where,
        _DESCRIPTIONS[rest],
    )
