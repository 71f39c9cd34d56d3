"""ARCHS4 HDF5 (``.h5`` / ``.hdf5``): ``data/expression`` genes x samples, gzip-chunked by sample
column, gene symbols in ``meta/genes/*``, GEO accessions in ``meta/samples/geo_accession``. Only
the requested samples and genes are read from disk; ``convert`` reads whole chunk columns."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import DataFileError, TruncatedFileError
from ..genes import strip_version
from . import register
from .base import (
    BlockSource,
    Matrix,
    Reader,
    ReadRequest,
    decode_strings,
    one_line,
    open_hdf5,
    selection,
)

log = logging.getLogger("exprssl")
ARCHS4_GENE_KEYS = ("meta/genes/symbol", "meta/genes/gene_symbol", "meta/genes/genes")
ARCHS4_SAMPLE_KEY = "meta/samples/geo_accession"


@register("archs4", suffixes=(".h5", ".hdf5"))
class Archs4Reader(Reader):
    """ARCHS4's layout: reads only the requested samples and genes."""

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        samples, sheet = request.samples, request.sheet_keys
        if samples is None and sheet is not None and sheet[1] == "exact":
            samples = _sheet_samples(path, sheet[0])
        adata = read_archs4(path, samples=samples, genes=request.genes)
        return Matrix(adata, self.name, selected=True)

    @contextmanager
    def blocks(self, path: Path) -> Iterator[BlockSource]:
        with open_hdf5(path) as f:
            genes, samples, dset = archs4_layout(f, path)

            def block(s0: int, s1: int, cols):  # genes x samples on disk: whole chunk columns
                raw = dset[:, s0:s1]
                return (raw if cols is None else raw[cols]).T

            yield BlockSource(
                strip_version(list(genes)),
                samples,
                dset.dtype,
                block,
                dset.chunks[1] if dset.chunks else 1,
                "ARCHS4",
            )


def _sheet_samples(path: Path, ids) -> list[str] | None:
    """With a sample sheet, an ARCHS4 file is read for the samples the sheet names only: the
    file ships about 900,000 (some 240 GB as float32), a task labels a few thousand. None when
    the sheet names none of them (the join then says so)."""
    with open_hdf5(path) as f:
        _, all_samples, _ = archs4_layout(f, path)
    keep = all_samples[all_samples.isin(pd.Index(ids).astype(str))]
    if not len(keep):
        return None
    log.info(
        "%s: reading the %d of its %d samples the sample sheet names",
        path,
        len(keep),
        len(all_samples),
    )
    return [str(s) for s in keep]


def archs4_layout(f, path: Path) -> tuple[pd.Index, pd.Index, Any]:
    """Gene ids, sample ids and the genes x samples ``data/expression`` dataset of an open ARCHS4
    file, after checking the layout (keys, 1-D id lists matching the matrix's shape)."""
    if "data/expression" not in f:
        raise DataFileError(
            f"{path}: HDF5 file without 'data/expression': not in the ARCHS4 layout "
            f"(top-level keys: {', '.join(list(f.keys())[:8]) or 'none'})"
        )
    gkey = next((k for k in ARCHS4_GENE_KEYS if k in f), None)
    if gkey is None or ARCHS4_SAMPLE_KEY not in f:
        raise DataFileError(
            f"{path}: ARCHS4 file lacks gene symbols ({' or '.join(ARCHS4_GENE_KEYS)}) "
            f"or sample ids ({ARCHS4_SAMPLE_KEY})"
        )
    dset = f["data/expression"]
    gene_ds, sample_ds = f[gkey], f[ARCHS4_SAMPLE_KEY]
    if (
        dset.ndim != 2
        or gene_ds.ndim != 1
        or sample_ds.ndim != 1
        or dset.shape != (len(gene_ds), len(sample_ds))
    ):
        raise DataFileError(
            f"{path}: data/expression shape {dset.shape} does not match "
            f"{gene_ds.shape[0] if gene_ds.ndim else 0} genes x "
            f"{sample_ds.shape[0] if sample_ds.ndim else 0} samples ({gkey}, {ARCHS4_SAMPLE_KEY})"
        )
    try:
        genes = pd.Index(decode_strings(gene_ds[:], str(path)))
        samples = pd.Index(decode_strings(sample_ds[:], str(path)))
    except OSError as e:
        raise TruncatedFileError(
            f"{path}: HDF5 ids could not be read, truncated or corrupt ({one_line(e)})"
        ) from None
    return genes, samples, dset


def read_archs4(
    path: Path, samples=None, genes=None, sample_meta: Sequence[str] | None = None
) -> ad.AnnData:
    """ARCHS4 HDF5 (genes x samples on disk): reads only the requested samples and genes.

    h5py fancy selection needs increasing indices, so the selection is read sorted and then put
    back in the requested order. Sample metadata from ``meta/samples/*`` goes to ``obs``.
    """
    source = str(path)
    with open_hdf5(path) as f:
        all_genes, all_samples, dset = archs4_layout(f, path)
        gi = selection(genes, all_genes, "genes", source)
        si = selection(samples, all_samples, "samples", source)
        gs, g_order = np.unique(gi, return_inverse=True)
        ss, s_order = np.unique(si, return_inverse=True)
        try:
            if len(gs) == len(all_genes):
                block = dset[:, ss] if len(ss) < len(all_samples) else dset[:]
            else:
                block = dset[gs, :][:, ss] if len(ss) == len(all_samples) else dset[:, ss][gs, :]
            X = np.asarray(block, dtype=np.float32)[g_order][:, s_order].T
            obs = pd.DataFrame(index=pd.Index(all_samples[si].astype(str)))
            meta = f["meta/samples"]
            keys = (
                sample_meta
                if sample_meta is not None
                else [k for k in meta if k != "geo_accession"]
            )
            for k in keys:
                d = meta.get(k)
                if d is not None and getattr(d, "ndim", 0) == 1 and d.shape[0] == len(all_samples):
                    obs[k] = decode_strings(d[:][si], source) if len(si) else []
        except OSError as e:
            raise TruncatedFileError(
                f"{path}: HDF5 data could not be read, truncated or corrupt ({one_line(e)})"
            ) from None
    var = pd.DataFrame(index=pd.Index(all_genes[gi].astype(str)))
    return ad.AnnData(X=X, obs=obs, var=var)
