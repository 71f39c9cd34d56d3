"""Registry of input formats: a new format is one file plus its ``@register`` line.

Each module of this package reads one format (``h5ad``, ``text`` for csv / tsv, ``parquet``,
``gct``, ``archs4``, ``store``, ``quant`` for Salmon / kallisto directories) and registers a
``Reader`` with its file-name suffixes and, where the content tells, a sniffing rule (a store is
an ``.h5ad`` or ``.h5`` recognised by what it holds). Everything that opens expression data
dispatches here: ``read_file`` (a whole matrix, ``exprssl.read_file``), ``open_blocks``
(bounded-memory blocks for ``exprssl.store.convert``) and ``open_rows`` (rows streamed by
``exprssl.store.ExpressionStore``).
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from ..errors import ConfigError, DataFileError, TruncatedFileError, UnknownFormatError
from ..genes import collapse_duplicates, strip_version
from ..validation import check_matrix, check_unique_samples
from .base import (
    ORIENTATIONS,
    BlockSource,
    Matrix,
    Reader,
    ReadRequest,
    Rows,
    check_file,
    duplicate_names_allowed,
    one_line,
    selection,
    stripped_ids,
)

log = logging.getLogger("exprssl")
READERS: dict[str, Reader] = {}  # format name -> its reader, in registration order


def register(name: str, *, suffixes: tuple[str, ...] = ()):
    """Class decorator: the ``Reader`` subclass reads format ``name``, files ending in
    ``suffixes`` (lower case, with the dot)."""

    def deco(cls: type[Reader]) -> type[Reader]:
        cls.name, cls.suffixes = name, tuple(suffixes)
        READERS[name] = cls()
        return cls

    return deco


def available() -> list[str]:
    """The format names ``read_file(..., format=...)`` takes."""
    return sorted(READERS)


def sheet_formats() -> list[str]:
    """The formats sample sheets are read in (``Reader.read_sheet``)."""
    return sorted(reader.name for reader in READERS.values() if reader.sheets)


def suffix_table() -> dict[str, str]:
    """File-name suffix -> format name."""
    return {suffix: reader.name for reader in READERS.values() for suffix in reader.suffixes}


# ----------------------------------------------------------------------------- dispatch
def sniff(path: Path) -> Reader | None:
    """The reader whose content rule recognises ``path`` (a store, a directory of
    quantifications), or None; reads nothing from what is not a regular file or directory."""
    return next((reader for reader in READERS.values() if reader.sniff(path)), None)


def by_suffix(path: Path) -> Reader:
    """The reader of ``path``'s suffix (a trailing ``.gz`` aside)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    table = suffix_table()
    if suffixes and suffixes[-1] in table:
        return READERS[table[suffixes[-1]]]
    compressed = "/".join(s.lstrip(".") for r in READERS.values() if r.gzip for s in r.suffixes)
    raise UnknownFormatError(
        f"{path}: unknown format '{''.join(path.suffixes) or '(no extension)'}'; "
        f"supported: {', '.join(sorted(table))} ({compressed} also .gz)"
    )


def get_reader(name: str, path: Path | str = "") -> Reader:
    """The reader of format ``name``."""
    if name not in READERS:
        raise UnknownFormatError(
            f"{path}: unknown format '{name}'; supported: {', '.join(available())}"
        )
    return READERS[name]


def reader_for(path: Path, format: str | None = None) -> Reader:
    """``format``'s reader, else the one whose content rule or suffix fits ``path``."""
    if format is not None:
        return get_reader(format, path)
    return sniff(path) or by_suffix(path)


def detect_format(path: Path) -> str:
    """The format name of ``path``: by content where a reader recognises it, else by suffix."""
    return reader_for(Path(path)).name


# ----------------------------------------------------------------------------- whole matrix
def read_file(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    orientation: str = "auto",
    samples=None,
    genes=None,
    duplicate_genes: str = "sum",
    counts_expected: bool = False,
    sample_id_column: str | None = None,
    sheet_keys=None,
    layer: str | None = None,
) -> ad.AnnData:
    """Read an expression file as AnnData: samples in ``obs``, genes in ``var``, float32 ``X``.

    ``sheet_keys`` (set by ``load_dataset`` from a sample sheet) lets ``orientation="auto"`` take
    the axis whose ids the sheet names as samples.

    Ensembl version suffixes are stripped and duplicate gene ids merged by ``duplicate_genes``
    (sum, mean, first or error). ``samples`` / ``genes`` select a subset (ARCHS4 reads only
    that subset from disk). Raises an ``exprssl.errors`` exception naming the file on bad input.

    Parameters
    ----------
    path
        The expression file: h5ad, csv, tsv, parquet, gct (csv/tsv/gct also .gz), ARCHS4 HDF5,
        an exprssl store, or a directory of Salmon / kallisto quantifications.
    format
        The file format (a name of ``exprssl.readers.available()``); None recognises it from
        the content (stores, directories) or the file name.
    orientation
        ``"samples_in_rows"``, ``"genes_in_rows"`` or ``"auto"`` (the longer axis is genes).
    samples, genes
        Ids of the samples / genes to keep; None keeps all.
    duplicate_genes
        How duplicate gene ids are merged: ``"sum"``, ``"mean"``, ``"first"`` or ``"error"``.
    counts_expected
        Refuse values that are not non-negative counts.
    sample_id_column
        The column holding sample ids; None takes the index or the first column.
    sheet_keys
        Sample ids of a sample sheet, to decide the orientation.
    layer
        An h5ad's layer read instead of ``X`` (e.g. ``"counts"``, where scanpy keeps them).

    Returns
    -------
    anndata.AnnData
        Samples x genes, float32 ``X``.

    Raises
    ------
    exprssl.errors.ExprsslError
        A subclass naming the file and the problem (format, values, duplicates, ...).
    """
    path, source = Path(path), str(path)
    reader = _checked_reader(path, format, orientation)
    if layer is not None and not reader.layers:
        raise ConfigError(
            f"{path}: layer '{layer}' names an AnnData layer, and a {reader.name} file has none"
        )
    request = ReadRequest(orientation, samples, genes, sample_id_column, sheet_keys, layer)
    matrix = reader.read(path, request)
    if matrix.selected:  # already applied on disk
        samples = genes = None
    adata = _cleaned(matrix.adata, path, duplicate_genes)
    if samples is not None:
        adata = adata[selection(samples, pd.Index(adata.obs_names), "samples", source)].copy()
    if genes is not None:
        adata = adata[:, selection(genes, pd.Index(adata.var_names), "genes", source)].copy()
    check_matrix(
        adata.X,
        source,
        samples=adata.obs_names,
        genes=adata.var_names,
        counts_expected=counts_expected,
    )
    adata.uns["exprssl"] = {"source": source, "format": matrix.format}
    if matrix.orientation:
        adata.uns["exprssl"]["orientation"] = matrix.orientation
    return adata


def _checked_reader(path: Path, format: str | None, orientation: str) -> Reader:
    """The reader for ``path`` after the checks every input gets, in the order users meet them:
    the file itself (a directory only where a format reads one), the orientation, the format."""
    chosen = sniff(path) if format is None else READERS.get(format)
    if chosen is None or not chosen.directory:
        check_file(path)
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"{path}: orientation must be one of {', '.join(ORIENTATIONS)}, got '{orientation}'"
        )
    return chosen or reader_for(path, format)


def _cleaned(adata: ad.AnnData, path: Path, duplicate_genes: str) -> ad.AnnData:
    """Ids as strings without surrounding whitespace, sample ids unique and not blank, Ensembl
    versions stripped and duplicate genes merged: what every format goes through."""
    source = str(path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DataFileError(f"{path}: no samples or no genes ({adata.n_obs} x {adata.n_vars})")
    with duplicate_names_allowed():
        adata.obs_names = stripped_ids(adata.obs_names, source, "sample")
        blank = np.flatnonzero(adata.obs_names == "")
        if len(blank):
            raise DataFileError(f"{path}: sample {blank[0] + 1} has a blank id (only spaces)")
        check_unique_samples(adata.obs_names, source)
        adata.var_names = strip_version(list(stripped_ids(adata.var_names, source, "gene")))
    return collapse_duplicates(adata, duplicate_genes, source)


# ----------------------------------------------------------------------------- streaming
@contextmanager
def open_blocks(path: Path, orientation: str = "auto") -> Iterator[BlockSource]:
    """``convert``'s source, open while the blocks are copied: the format's own block reader
    (whole chunk columns of an ARCHS4 file, rows of an h5ad or a store), or the whole matrix
    read by ``read_file`` for formats read whole (text tables, parquet, GCT)."""
    reader = reader_for(path)
    blocks = reader.blocks(path)
    if blocks is None:
        yield BlockSource.in_memory(read_file(path, orientation=orientation), reader.name)
        return
    with blocks as source:
        yield source


def open_rows(path: Path) -> Rows:
    """Rows of ``path`` read from disk (an h5ad or a store), or one line saying why not."""
    try:
        reader = sniff(path) or by_suffix(path)
    except UnknownFormatError:
        reader = None
    try:
        if reader is None or not reader.streams:
            with h5py.File(path, "r"):
                raise DataFileError(
                    f"{path}: not an exprssl store (make one with `exprssl convert`)"
                )
        return reader.rows(path)
    except OSError as e:
        raise TruncatedFileError(f"{path}: not a readable HDF5 file ({one_line(e)})") from None
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
    ) as e:  # groups or attributes not as written
        kind = "h5ad file" if path.suffix == ".h5ad" else "exprssl store"
        raise DataFileError(f"{path}: not a readable {kind} ({one_line(e)})") from None


def _register_all() -> None:
    """Import every format module of this package: its ``@register`` line is all it takes."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "tables"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_all()

__all__ = [
    "ORIENTATIONS",
    "READERS",
    "BlockSource",
    "Matrix",
    "ReadRequest",
    "Reader",
    "Rows",
    "available",
    "detect_format",
    "get_reader",
    "open_blocks",
    "open_rows",
    "read_file",
    "reader_for",
    "register",
    "sheet_formats",
    "sniff",
    "suffix_table",
]
