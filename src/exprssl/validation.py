"""One home for input validation: every reader, ``Preprocessor.fit`` and ``transform`` check a
matrix here, so a bad value gets the same one-line message (file, sample, gene) wherever it
enters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import (
    ConfigError,
    DuplicateSamplesError,
    InvalidValuesError,
    NegativeCountsError,
    NonNumericError,
)


def describe_position(i: int, j: int, samples: Sequence | None = None, genes: Sequence | None = None) -> str:
    """'sample S3, gene TP53' for cell (i, j), falling back to positions when names are unknown."""
    return (f"sample {samples[i] if samples is not None else i}, "
            f"gene {genes[j] if genes is not None else j}")


def check_matrix(X, source: str = "data", *, samples: Sequence | None = None, genes: Sequence | None = None,
                 counts_expected: bool = False) -> np.ndarray:
    """A 2-D numeric samples x genes matrix without NaN/inf (and without negative values where
    raw counts are expected); returns it as a float32 array. The finiteness check is one float64
    sum (NaN and inf propagate), so a clean matrix costs one pass and no mask."""
    X = np.asarray(X)
    if X.dtype.kind == "c":  # casting would silently drop the imaginary part
        raise InvalidValuesError(f"{source}: complex values (dtype {X.dtype}); expected real expression values")
    if X.dtype.kind not in "biuf":
        try:
            X = X.astype(np.float32)
        except (TypeError, ValueError):
            raise NonNumericError(f"{source}: values are not numbers (dtype {X.dtype}); expected a numeric "
                                  "samples x genes matrix") from None
    if X.ndim != 2:
        raise ConfigError(f"{source}: expected a 2-D samples x genes matrix, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X.sum(dtype=np.float64)):
        bad = ~np.isfinite(X)
        if bad.any():  # the sum can also overflow on finite float32 values near the maximum
            i, j = np.argwhere(bad)[0]
            raise InvalidValuesError(f"{source}: {int(bad.sum())} NaN/inf values (first at "
                                     f"{describe_position(i, j, samples, genes)}); empty cells read as NaN")
    if counts_expected and X.size and X.min() < 0:
        i, j = np.argwhere(X < 0)[0]
        raise NegativeCountsError(f"{source}: {int((X < 0).sum())} negative values where raw counts are "
                                  f"expected (first {X[i, j]:g} at {describe_position(i, j, samples, genes)})")
    return X


def check_unique_samples(names, source: str = "data") -> None:
    """Refuse repeated sample ids, naming them: joins, splits and labels all key on the id."""
    names = pd.Index(names)
    if not names.is_unique:
        dups = names[names.duplicated()].unique()
        raise DuplicateSamplesError(f"{source}: {len(dups)} duplicated sample ids, e.g. "
                                    f"{', '.join(map(str, dups[:5]))}; each sample must appear once")
