"""The exprssl store, recognised by its content: what ``exprssl convert`` writes (a sample-major
``.h5ad`` with ``uns["exprssl_store"]``, read like any h5ad) and the private HDF5 layout exprssl
0.2 wrote (``.h5`` with a ``format`` attribute, ``X`` samples x genes, ``genes``, ``samples``).
A store always streams."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from ..errors import DataFileError, TruncatedFileError
from . import register
from .base import (
    BlockSource,
    Matrix,
    Reader,
    ReadRequest,
    Rows,
    decode_strings,
    one_line,
    open_hdf5,
    take_columns,
)
from .h5ad import STORE_KEY, H5adReader, RowReader

log = logging.getLogger("exprssl")
LEGACY_STORE_FORMAT = (
    "exprssl-store-1"  # the 0.2 layout: root attribute "format", X, genes, samples
)


def is_store(path) -> bool:
    """Whether ``path`` is a store written by ``convert``: an ``.h5ad`` with
    ``uns["exprssl_store"]``, or an exprssl 0.2 store (``.h5`` with its format attribute)."""
    p = Path(path)
    if p.suffix not in (".h5ad", ".h5", ".hdf5") or not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            if p.suffix == ".h5ad":
                return f"uns/{STORE_KEY}" in f
            return f.attrs.get("format") == LEGACY_STORE_FORMAT
    except OSError:
        return False


@register("store")
class StoreReader(Reader):
    """A store: the sample-major one is an h5ad (read by ``H5adReader``), the 0.2 one its own
    layout, row-chunked."""

    streams = True
    always_streams = True

    @classmethod
    def sniff(cls, path: Path) -> bool:
        return is_store(path)

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        _check_store(path)
        if path.suffix == ".h5ad":
            return H5adReader().read(path, request)
        with open_hdf5(path) as f:
            try:
                X = np.asarray(f["X"][:], dtype=np.float32)
                genes = decode_strings(f["genes"][:], str(path))
                samples = decode_strings(f["samples"][:], str(path))
            except OSError as e:
                raise TruncatedFileError(
                    f"{path}: HDF5 data could not be read, truncated or corrupt ({one_line(e)})"
                ) from None
        obs, var = pd.DataFrame(index=pd.Index(samples)), pd.DataFrame(index=pd.Index(genes))
        return Matrix(ad.AnnData(X=X, obs=obs, var=var), self.name)

    def blocks(self, path: Path) -> AbstractContextManager[BlockSource]:
        _check_store(path)
        return H5adReader().blocks(path) if path.suffix == ".h5ad" else _legacy_blocks(path)

    def rows(self, path: Path) -> Rows:
        return H5adReader().rows(path) if path.suffix == ".h5ad" else LegacyRows(path)


def _check_store(path: Path) -> None:
    """A file read as a store (``format="store"``) must be one."""
    if not is_store(path):
        raise DataFileError(f"{path}: not an exprssl store (make one with `exprssl convert`)")


@contextmanager
def _legacy_blocks(path: Path) -> Iterator[BlockSource]:
    with open_hdf5(path) as f:
        X = f["X"]
        genes = decode_strings(f["genes"][:], str(path))
        samples = decode_strings(f["samples"][:], str(path))
        yield BlockSource(
            genes,
            samples,
            X.dtype,
            lambda s0, s1, cols: take_columns(X[s0:s1], cols),
            X.chunks[0] if X.chunks else 1,
            "exprssl 0.2 store",
        )


class LegacyRows(Rows):
    """A 0.2 store's rows, chunk by chunk."""

    is_h5ad = False

    def __init__(self, path: Path):
        self.path = path
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != LEGACY_STORE_FORMAT:
                raise DataFileError(
                    f"{path}: not an exprssl store (make one with `exprssl convert`)"
                )
            log.info(
                "%s: a store written by exprssl 0.2; it streams, but `exprssl convert %s "
                "--out STORE.h5ad` makes a compressed one that anndata opens",
                path,
                path,
            )
            self.shape = f["X"].shape
            self.chunk_rows = f["X"].chunks[0]
            self.genes = list(decode_strings(f["genes"][:], str(path)))

    @contextmanager
    def open(self) -> Iterator[RowReader]:
        with h5py.File(self.path, "r") as f:
            yield RowReader(f["X"], self.path)

    def obs(self) -> pd.DataFrame:
        with h5py.File(self.path, "r") as f:
            ids = list(decode_strings(f["samples"][:], str(self.path)))
        return pd.DataFrame(index=pd.Index(ids))

    def uns(self) -> dict:
        return {"format": LEGACY_STORE_FORMAT}
