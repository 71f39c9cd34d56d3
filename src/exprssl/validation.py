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


def describe_position(
    i: int, j: int, samples: Sequence | None = None, genes: Sequence | None = None
) -> str:
    """'sample S3, gene TP53' for cell (i, j), falling back to positions when names are unknown."""
    return (
        f"sample {samples[i] if samples is not None else i}, "
        f"gene {genes[j] if genes is not None else j}"
    )


def check_matrix(
    X,
    source: str = "data",
    *,
    samples: Sequence | None = None,
    genes: Sequence | None = None,
    counts_expected: bool = False,
) -> np.ndarray:
    """A 2-D numeric samples x genes matrix without NaN/inf (and without negative values where
    raw counts are expected); returns it as a float32 array. The finiteness check is one float64
    sum (NaN and inf propagate), so a clean matrix costs one pass and no mask."""
    X = np.asarray(X)
    if X.dtype.kind == "c":  # casting would silently drop the imaginary part
        raise InvalidValuesError(
            f"{source}: complex values (dtype {X.dtype}); expected real expression values"
        )
    if X.dtype.kind == "b":  # true/false flags would count as 1 and 0
        raise NonNumericError(
            f"{source}: true/false values (dtype bool); expected expression values"
        )
    if X.dtype.kind not in "iuf":
        try:
            X = X.astype(np.float32)
        except (TypeError, ValueError):
            raise NonNumericError(
                f"{source}: values are not numbers (dtype {X.dtype}); expected a numeric "
                "samples x genes matrix"
            ) from None
    if X.ndim != 2:
        raise ConfigError(f"{source}: expected a 2-D samples x genes matrix, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X.sum(dtype=np.float64)):
        nan, inf = np.isnan(X), np.isinf(X)
        if inf.any():  # the sum can also overflow on finite float32 values near the maximum
            i, j = np.argwhere(inf)[0]
            raise InvalidValuesError(
                f"{source}: {int(inf.sum())} infinite values (first {X[i, j]:g} at "
                f"{describe_position(i, j, samples, genes)}): a text 'Inf', or a number "
                "beyond float32's range (3.4e38)"
            )
        if nan.any():
            i, j = np.argwhere(nan)[0]
            raise InvalidValuesError(
                f"{source}: {int(nan.sum())} NaN values (first at "
                f"{describe_position(i, j, samples, genes)}); empty cells and NA read as NaN"
            )
    if counts_expected and X.size and X.min() < 0:
        i, j = np.argwhere(X < 0)[0]
        raise NegativeCountsError(
            f"{source}: {int((X < 0).sum())} negative values where raw counts are "
            f"expected (first {X[i, j]:g} at {describe_position(i, j, samples, genes)})"
        )
    return X


def check_unique_samples(names, source: str = "data") -> None:
    """Refuse repeated sample ids, naming them: joins, splits and labels all key on the id."""
    names = pd.Index(names)
    if not names.is_unique:
        dups = names[names.duplicated()].unique()
        raise DuplicateSamplesError(
            f"{source}: {len(dups)} duplicated sample ids, e.g. "
            f"{', '.join(map(str, dups[:5]))}; each sample must appear once"
        )


def nonfinite_tensors(state: dict) -> list[str]:
    """The names of ``state``'s floating-point tensors holding NaN or inf, in order (entries
    that are not tensors, such as the method's name in saved weights, are skipped)."""
    import torch

    return [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor)
        and t.is_floating_point()
        and not bool(torch.isfinite(t).all())
    ]


def check_finite_state(state: dict, source: str = "weights") -> None:
    """Refuse saved weights holding NaN or inf: a model loaded from them embeds every sample as
    NaN without a word."""
    bad = nonfinite_tensors(state)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise InvalidValuesError(
            f"{source}: weights {bad[0]}{more} hold NaN or infinite values; the file is "
            "damaged or from a diverged run: pretrain again"
        )


_FITTED_ARRAYS = ("fill_", "mean_", "scale_", "quantile_ref_")


def check_finite_preprocessor(prep, source: str = "preprocessor") -> None:
    """Refuse a fitted preprocessor whose statistics (means, scales, fill values) are not
    finite: every embedding through it would be NaN."""
    for name in _FITTED_ARRAYS:
        values = getattr(prep, name, None)
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            j = int(np.flatnonzero(~np.isfinite(values))[0])
            genes = getattr(prep, "genes_", None)
            gene = f" (gene {genes[j]})" if genes is not None and j < len(genes) else ""
            raise InvalidValuesError(
                f"{source}: '{name.rstrip('_')}' holds {int((~np.isfinite(values)).sum())} "
                f"NaN or infinite values, first at position {j}{gene}; the file is damaged: "
                "pretrain again"
            )


def check_same_method(
    config_method: str, weights_method: str | None, source: str = "weights"
) -> None:
    """Refuse weights written for another method than the one config.json names: two methods
    can share layer names and shapes, and the wrong one would load silently."""
    if weights_method is not None and weights_method != config_method:
        raise InvalidValuesError(
            f"{source}: weights of a '{weights_method}' model, but config.json names "
            f"'{config_method}'; the files come from different models"
        )


# the entry of weights.pt naming the method that wrote it (models saved before 0.3 lack it)
WEIGHTS_METHOD_KEY = "_exprssl_method"


def check_top_genes(top_genes: int | None, n_genes: int, source: str = "data") -> None:
    """``--top-genes`` (``top_k_variance``) against the genes the data has: asking for more
    keeps every gene, which is not what was asked."""
    if (
        top_genes is not None
        and not isinstance(top_genes, bool)
        and isinstance(top_genes, int)
        and top_genes > n_genes
    ):
        raise ConfigError(
            f"{source}: --top-genes {top_genes} is more than the {n_genes} genes the data has; "
            f"use at most {n_genes}, or leave it out to keep them all"
        )


def check_streamed_h5ad(store, source: str) -> None:
    """What loading an .h5ad whole refuses, refused when it is streamed too: repeated sample
    ids (they key labels and outputs) and a true/false matrix (read as 1 and 0)."""
    import h5py

    check_unique_samples(store.samples, source)
    with h5py.File(store.path, "r") as f:
        X = f["X"]
        check_not_bool(X.dtype if isinstance(X, h5py.Dataset) else X["data"].dtype, source)


def check_not_bool(dtype: np.dtype, source: str) -> None:
    """An h5ad's X of true/false values is refused: cast to float32 they would count as 1 and 0."""
    if dtype.kind == "b":
        raise NonNumericError(
            f"{source}: X holds true/false values (dtype bool); expected expression values"
        )


def check_key(key: object, where: str = "obsm key", *, nested: bool = True) -> str:
    """``key`` as a name anndata writes and reads back as given (an obsm key, an obs column), or
    one line: h5py and zarr make ``a/b`` a nested group (``nested``: a mapping's key, not a
    table's column), ``.`` is the group itself, a NUL ends the name, ``_index`` is anndata's."""
    text = key if isinstance(key, str) else ""
    if not text.strip():
        raise ConfigError(f"{where} {key!r}: must be a non-empty name")
    if nested and "/" in text:
        raise ConfigError(
            f"{where} {key!r} cannot hold '/' (.h5ad and zarr read it as a nested group, not "
            "this name); use e.g. '_' instead"
        )
    if text == "." or "\x00" in text or (not nested and text == "_index"):
        raise ConfigError(
            f"{where} {key!r} cannot be written to .h5ad (a name h5py or anndata reserves)"
        )
    return text


def check_keys(adata) -> None:
    """Every key ``adata`` would write as a name (``check_key``), before anything is written."""
    for where, names in (("obsm key", adata.obsm), ("layer", adata.layers)):
        for name in names:
            check_key(name, where)
    for where, frame in (("obs column", adata.obs), ("var column", adata.var)):
        for name in frame.columns:
            check_key(name, where, nested=False)
