"""AnnData ``.h5ad``: read whole (dense float32), in blocks for ``convert`` and by rows for
streaming (anndata's backed mode: a dense ``X`` or a CSR group, only the rows' entries read)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import h5py
import hdf5plugin  # noqa: F401  registers Blosc: X of a store written by `exprssl convert`
import numpy as np
import pandas as pd

from ..errors import DataFileError, TruncatedFileError
from ..genes import strip_version
from ..validation import check_not_bool
from . import register
from .base import (
    BlockSource,
    Matrix,
    Reader,
    ReadRequest,
    Rows,
    duplicate_names_allowed,
    one_line,
    open_hdf5,
    take_columns,
)

STORE_KEY = "exprssl_store"  # uns key of what `exprssl convert` records in a store it writes
H5AD_CHUNK_ROWS = (
    256  # rows per shuffled block of an h5ad, whose own HDF5 chunks may be tiny or absent
)


def check_h5ad(path: Path) -> None:
    """Refuse, naming the file, an HDF5 file that is not AnnData before anndata trips over it."""
    with open_hdf5(path, "h5ad") as f:
        keys = list(f.keys())
    if "obs" not in keys or "var" not in keys:
        raise DataFileError(
            f"{path}: HDF5 file but not an AnnData h5ad (no obs/var groups; top-level keys: "
            f"{', '.join(keys[:8]) or 'none'})"
        )
    if "X" not in keys:
        raise DataFileError(f"{path}: h5ad file has no X matrix (only {', '.join(keys[:8])})")


def _open_anndata(path: Path, **options) -> ad.AnnData:
    """``anndata.read_h5ad``, its errors on malformed content as one line naming the file."""
    check_h5ad(path)
    try:
        with duplicate_names_allowed():
            return ad.read_h5ad(path, **options)
    except MemoryError:
        raise
    except Exception as e:  # anndata raises many types on malformed content; none is a bug of ours
        raise TruncatedFileError(
            f"{path}: not a readable h5ad file, truncated or corrupt ({one_line(e)})"
        ) from None


def _layer_as_x(adata: ad.AnnData, layer: str, path: Path) -> ad.AnnData:
    """``adata`` with ``layers[layer]`` as its X (the other layers dropped: nothing reads them),
    or one line naming the file and the layers it has."""
    if layer not in adata.layers:
        names = ", ".join(map(str, adata.layers.keys())) or "none"
        raise DataFileError(f"{path}: no layer '{layer}' (its layers: {names})")
    return ad.AnnData(X=adata.layers[layer], obs=adata.obs, var=adata.var, uns=adata.uns)


@register("h5ad", suffixes=(".h5ad",))
class H5adReader(Reader):
    """AnnData files: samples in ``obs``, genes in ``var``."""

    streams = True
    layers = True

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        adata = _open_anndata(path)
        if request.layer is not None:
            adata = _layer_as_x(adata, request.layer, path)
        if adata.X is None:
            raise DataFileError(f"{path}: h5ad file has no X matrix")
        check_not_bool(adata.X.dtype, str(path))
        if hasattr(adata.X, "toarray"):
            adata.X = adata.X.toarray()
        adata.X = np.asarray(adata.X, dtype=np.float32)
        return Matrix(adata, "h5ad")

    @contextmanager
    def blocks(self, path: Path) -> Iterator[BlockSource]:
        a = _open_anndata(path, backed="r")
        try:

            def rows(s0: int, s1: int, cols):
                b = a.X[s0:s1]
                return take_columns(b.toarray() if hasattr(b, "toarray") else np.asarray(b), cols)

            yield BlockSource(
                strip_version(list(a.var_names)), list(a.obs_names), a.X.dtype, rows, 1, "h5ad"
            )
        finally:
            a.file.close()

    def rows(self, path: Path) -> Rows:
        return H5adRows(path)


class RowReader:
    """Dense float32 rows of an open file's ``X``: a store's or dense h5ad's dataset, or an h5ad's
    CSR group (through anndata's backed sparse dataset, which reads only the rows' entries)."""

    def __init__(self, node, path: Path):
        self._path = path
        if isinstance(node, h5py.Dataset):
            self._sparse, self._X = False, node
            return
        encoding = node.attrs.get("encoding-type", "")
        if encoding != "csr_matrix":
            raise DataFileError(
                f"{path}: X is stored as {encoding or 'an unknown encoding'}, which cannot be "
                "read by samples; rewrite it once with `exprssl convert` to stream it"
            )
        from anndata.io import sparse_dataset

        self._sparse, self._X = True, sparse_dataset(node)

    def __getitem__(self, idx) -> np.ndarray:
        try:
            block = self._X[idx]
        except OSError as e:  # a chunk that no longer decompresses: the file changed or is damaged
            raise TruncatedFileError(
                f"{self._path}: rows could not be read, truncated or corrupt ({one_line(e)})"
            ) from None
        if self._sparse:
            block = block.toarray()
        return np.asarray(block, dtype=np.float32)


class H5adRows(Rows):
    """An h5ad's rows: a store's own row chunks read whole, else blocks of ``H5AD_CHUNK_ROWS``."""

    is_h5ad = True

    def __init__(self, path: Path):
        from anndata.io import read_elem

        self.path = path
        with h5py.File(path, "r") as f:
            if "X" not in f or "var" not in f or "obs" not in f:
                raise DataFileError(f"{path}: not an h5ad file (no X, obs or var)")
            X = f["X"]
            self.shape = tuple(
                int(v) for v in (X.shape if isinstance(X, h5py.Dataset) else X.attrs["shape"])
            )
            RowReader(X, path)  # fails now, naming the file, if X cannot be read by rows
            row_chunked = (
                isinstance(X, h5py.Dataset) and X.chunks is not None and X.chunks[1] == X.shape[1]
            )
            self.chunk_rows = X.chunks[0] if row_chunked else H5AD_CHUNK_ROWS
            var_names = [str(g) for g in read_elem(f["var"]).index]
        self.genes = [str(g) for g in strip_version(var_names)]
        if len(set(self.genes)) != len(self.genes):
            raise DataFileError(
                f"{path}: duplicated gene ids; collapse them first "
                "(exprssl.read_file, then write h5ad) or load the file in memory"
            )

    @contextmanager
    def open(self) -> Iterator[RowReader]:
        with h5py.File(self.path, "r") as f:
            yield RowReader(f["X"], self.path)

    def obs(self) -> pd.DataFrame:
        from anndata.io import read_elem

        with h5py.File(self.path, "r") as f:
            obs = read_elem(f["obs"])
        obs.index = obs.index.astype(str)
        return obs

    def uns(self) -> dict:
        from anndata.io import read_elem

        with h5py.File(self.path, "r") as f:
            return read_elem(f[f"uns/{STORE_KEY}"]) if f"uns/{STORE_KEY}" in f else {}
