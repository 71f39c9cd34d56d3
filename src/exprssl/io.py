"""Reading expression data into AnnData (samples x genes, float32) and joining sample sheets.

Formats: ``.h5ad``; ``.csv`` / ``.tsv`` / ``.txt`` (optionally ``.gz``); ``.parquet``; GTEx
``.gct``; ARCHS4 HDF5 (``.h5`` / ``.hdf5``).

Orientation of tables (csv/tsv/parquet): ``orientation="samples_in_rows"`` or
``"genes_in_rows"``; the default ``"auto"`` takes the longer axis as genes (expression tables
have far more genes than samples), ties meaning samples in rows. The first column holds the ids.

TCGA ids: sample sheets from GDC often key rows by patient (``TCGA-A1-A0SB``) while expression
columns carry full aliquot barcodes (``TCGA-A1-A0SB-01A-11R-A144-07``). ``add_labels(...,
match="tcga_sample")`` matches on the first four barcode fields (``TCGA-A1-A0SB-01``: patient +
sample type, 01 tumour, 11 normal) and ``match="tcga_patient"`` on the first three. GDC-style
pair ids ``"<case>|<sample>"`` are split and the barcode part is used.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .errors import (
    DataFileError,
    LabelColumnError,
    LabelMatchError,
    NonNumericError,
    SingleClassError,
    TruncatedFileError,
    UnknownFormatError,
)
from .genes import collapse_duplicates, strip_version
from .scale import guess_scale
from .utils import atomic_path
from .validation import check_matrix, check_unique_samples

log = logging.getLogger("exprssl")

FORMATS = {".h5ad": "h5ad", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".tab": "tsv",
           ".parquet": "parquet", ".pq": "parquet", ".gct": "gct", ".h5": "archs4", ".hdf5": "archs4"}
ORIENTATIONS = ("auto", "samples_in_rows", "genes_in_rows")
ARCHS4_GENE_KEYS = ("meta/genes/symbol", "meta/genes/gene_symbol", "meta/genes/genes")
ARCHS4_SAMPLE_KEY = "meta/samples/geo_accession"


# ----------------------------------------------------------------------------- format detection
def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise UnknownFormatError(f"{path}: unknown format '{''.join(path.suffixes) or '(no extension)'}'; "
                             f"supported: {', '.join(sorted(FORMATS))} (csv/tsv/txt/gct also .gz)")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty")


# ----------------------------------------------------------------------------- readers
def _numeric_frame(df: pd.DataFrame, source: str) -> np.ndarray:
    """Frame -> float32, naming the first non-numeric cell if there is one."""
    try:
        return df.to_numpy(dtype=np.float32)
    except (ValueError, TypeError):
        pass
    conv = df.apply(pd.to_numeric, errors="coerce")
    bad = conv.isna() & df.notna()
    r, c = np.argwhere(bad.to_numpy())[0]
    raise NonNumericError(f"{source}: non-numeric value {df.iat[r, c]!r} at row '{df.index[r]}', "
                          f"column '{df.columns[c]}'")


def _orient(df: pd.DataFrame, orientation: str, source: str) -> pd.DataFrame:
    if orientation not in ORIENTATIONS:
        raise DataFileError(f"{source}: orientation must be one of {', '.join(ORIENTATIONS)}, got '{orientation}'")
    if orientation == "genes_in_rows" or (orientation == "auto" and df.shape[0] > df.shape[1]):
        return df.T
    return df


def _read_table(path: Path, fmt: str, orientation: str, sample_id_column: str | None) -> pd.DataFrame:
    source = str(path)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
            if sample_id_column is not None or isinstance(df.index, pd.RangeIndex):
                col = sample_id_column or df.columns[0]
                df = df.set_index(col)
        else:
            sep = "," if fmt == "csv" else "\t"
            df = pd.read_csv(path, sep=sep, index_col=sample_id_column if sample_id_column else 0,
                             low_memory=False)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise TruncatedFileError(f"{path}: compressed file is truncated or corrupt ({e})") from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: file has no data") from None
    except (OSError, ValueError) as e:
        if fmt == "parquet":
            raise TruncatedFileError(f"{path}: not a readable parquet file, truncated or corrupt ({e})") from None
        raise DataFileError(f"{path}: could not parse as {fmt} ({e})") from None
    except KeyError as e:
        raise LabelColumnError(f"{path}: id column {e} not found") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataFileError(f"{path}: table has no data rows or columns")
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    return _orient(df, orientation, source)


def _read_gct(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            version = fh.readline().strip()
            if not version.startswith("#1."):
                raise DataFileError(f"{path}: not a GCT file (first line '{version[:20]}', expected '#1.2')")
            fh.readline()
            df = pd.read_csv(fh, sep="\t", index_col=0, low_memory=False)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise TruncatedFileError(f"{path}: compressed file is truncated or corrupt ({e})") from None
    df = df.drop(columns=[c for c in df.columns if c.lower() == "description"])
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    return df.T


def _decode(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in ("S", "O"):
        return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in a], dtype=object)
    return a


def _selection(requested, available: pd.Index, what: str, source: str) -> np.ndarray:
    """Positions of requested ids (or ints) in ``available``, in the requested order."""
    if requested is None:
        return np.arange(len(available))
    req = list(requested)
    if req and all(isinstance(r, (int, np.integer)) for r in req):
        idx = np.asarray(req, dtype=np.int64)
        if idx.min() < 0 or idx.max() >= len(available):
            raise DataFileError(f"{source}: {what} index out of range (0..{len(available) - 1})")
        return idx
    pos = available.get_indexer([str(r) for r in req])
    if (pos < 0).any():
        missing = [str(r) for r, p in zip(req, pos, strict=True) if p < 0]
        raise DataFileError(f"{source}: {len(missing)} requested {what} not in the file, e.g. {', '.join(missing[:5])}")
    return pos


def read_archs4(path: Path, samples=None, genes=None,
                sample_meta: Sequence[str] | None = None) -> ad.AnnData:
    """ARCHS4 HDF5 (genes x samples on disk): reads only the requested samples and genes.

    h5py fancy selection needs increasing indices, so the selection is read sorted and then put
    back in the requested order. Sample metadata from ``meta/samples/*`` goes to ``obs``.
    """
    import h5py

    source = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TruncatedFileError(f"{path}: not a readable HDF5 file, truncated or corrupt ({e})") from None
    with f:
        if "data/expression" not in f:
            raise DataFileError(f"{path}: HDF5 file without 'data/expression': not in the ARCHS4 layout")
        gkey = next((k for k in ARCHS4_GENE_KEYS if k in f), None)
        if gkey is None or ARCHS4_SAMPLE_KEY not in f:
            raise DataFileError(f"{path}: ARCHS4 file lacks gene symbols ({' or '.join(ARCHS4_GENE_KEYS)}) "
                                f"or sample ids ({ARCHS4_SAMPLE_KEY})")
        all_genes = pd.Index(_decode(f[gkey][:]))
        all_samples = pd.Index(_decode(f[ARCHS4_SAMPLE_KEY][:]))
        gi = _selection(genes, all_genes, "genes", source)
        si = _selection(samples, all_samples, "samples", source)
        gs, g_order = np.unique(gi, return_inverse=True)
        ss, s_order = np.unique(si, return_inverse=True)
        dset = f["data/expression"]
        if dset.shape != (len(all_genes), len(all_samples)):
            raise DataFileError(f"{path}: data/expression shape {dset.shape} does not match "
                                f"{len(all_genes)} genes x {len(all_samples)} samples")
        try:
            if len(gs) == len(all_genes):
                block = dset[:, ss] if len(ss) < len(all_samples) else dset[:]
            else:
                block = dset[gs, :][:, ss] if len(ss) == len(all_samples) else dset[:, ss][gs, :]
        except OSError as e:
            raise TruncatedFileError(f"{path}: HDF5 data could not be read, truncated or corrupt ({e})") from None
        X = np.asarray(block, dtype=np.float32)[g_order][:, s_order].T
        obs = pd.DataFrame(index=pd.Index(all_samples[si].astype(str)))
        meta = f["meta/samples"]
        keys = sample_meta if sample_meta is not None else [k for k in meta if k != "geo_accession"]
        for k in keys:
            d = meta.get(k)
            if d is not None and d.ndim == 1 and d.shape[0] == len(all_samples):
                obs[k] = _decode(d[:][si]) if len(si) else []
    var = pd.DataFrame(index=pd.Index(all_genes[gi].astype(str)))
    return ad.AnnData(X=X, obs=obs, var=var)


def read(path: str | os.PathLike, *, format: str | None = None, orientation: str = "auto",
         samples=None, genes=None, duplicate_genes: str = "sum", counts_expected: bool = False,
         sample_id_column: str | None = None) -> ad.AnnData:
    """Read an expression file as AnnData: samples in ``obs``, genes in ``var``, float32 ``X``.

    Ensembl version suffixes are stripped and duplicate gene ids merged by ``duplicate_genes``
    (sum, mean, first or error). ``samples`` / ``genes`` select a subset (ARCHS4 reads only
    that subset from disk). Raises an ``exprssl.errors`` exception naming the file on bad input.
    """
    path = Path(path)
    _check_file(path)
    fmt = format or detect_format(path)
    source = str(path)
    if fmt == "h5ad":
        try:
            adata = ad.read_h5ad(path)
        except (OSError, KeyError, ValueError) as e:
            raise TruncatedFileError(f"{path}: not a readable h5ad file, truncated or corrupt ({e})") from None
        if hasattr(adata.X, "toarray"):
            adata.X = adata.X.toarray()
        adata.X = np.asarray(adata.X, dtype=np.float32)
    elif fmt == "archs4":
        adata = read_archs4(path, samples=samples, genes=genes)
        samples = genes = None  # already applied on disk
    else:
        df = _read_gct(path) if fmt == "gct" else _read_table(path, fmt, orientation, sample_id_column)
        X = _numeric_frame(df, source)
        adata = ad.AnnData(X=X, obs=pd.DataFrame(index=df.index), var=pd.DataFrame(index=df.columns))
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DataFileError(f"{path}: no samples or no genes ({adata.n_obs} x {adata.n_vars})")
    adata.obs_names = adata.obs_names.astype(str)
    check_unique_samples(adata.obs_names, source)
    adata.var_names = strip_version(list(adata.var_names.astype(str)))
    adata = collapse_duplicates(adata, duplicate_genes, source)
    if samples is not None:
        adata = adata[_selection(samples, pd.Index(adata.obs_names), "samples", source)].copy()
    if genes is not None:
        adata = adata[:, _selection(genes, pd.Index(adata.var_names), "genes", source)].copy()
    check_matrix(adata.X, source, samples=adata.obs_names, genes=adata.var_names,
                 counts_expected=counts_expected)
    adata.uns["exprssl"] = {"source": source, "format": fmt}
    return adata


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename): an existing file is never left half-written."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return path


# ----------------------------------------------------------------------------- labels
def tcga_id(barcode: str, level: str = "sample") -> str:
    """Cut a TCGA barcode to ``patient`` (3 fields) or ``sample`` (4 fields, vial letter dropped)."""
    s = str(barcode)
    if "|" in s:  # GDC "case|sample" pair: keep the part that is a barcode at this level
        parts = [p for p in s.split("|") if p.upper().startswith("TCGA-")]
        s = max(parts, key=len) if parts else s.split("|")[-1]
    fields = s.upper().split("-")
    if level == "patient":
        return "-".join(fields[:3])
    if level == "sample":
        if len(fields) < 4:
            return "-".join(fields)
        return "-".join(fields[:3] + [fields[3][:2]])
    raise ValueError(f"level must be 'patient' or 'sample', got '{level}'")


MATCH_MODES = {"exact": None, "tcga_sample": "sample", "tcga_patient": "patient"}


def _read_sheet(path: Path) -> pd.DataFrame:
    _check_file(path)
    fmt = detect_format(path)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
            if not isinstance(df.index, pd.RangeIndex):
                df = df.reset_index()
        elif fmt in ("csv", "tsv"):
            df = pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=True)
        else:
            raise UnknownFormatError(f"{path}: sample sheets must be csv, tsv or parquet")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise TruncatedFileError(f"{path}: compressed file is truncated or corrupt ({e})") from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: sample sheet has no data") from None
    if df.empty:
        raise DataFileError(f"{path}: sample sheet has no rows")
    return df


def add_labels(adata: ad.AnnData, labels: str | os.PathLike | pd.DataFrame, *, id_column: str | None = None,
               columns: Sequence[str] | None = None, match: str = "exact") -> ad.AnnData:
    """Join a sample sheet into ``obs`` on a sample-id column (default: its first column).

    Returns a new AnnData in the same sample order; unmatched samples get missing labels. The
    match count is logged and kept in ``uns["exprssl"]["label_match"]``.
    """
    if isinstance(labels, pd.DataFrame):
        sheet, source = labels.reset_index() if not isinstance(labels.index, pd.RangeIndex) else labels, "labels"
    else:
        sheet, source = _read_sheet(Path(labels)), str(labels)
    if match not in MATCH_MODES:
        raise LabelColumnError(f"match must be one of {', '.join(MATCH_MODES)}, got '{match}'")
    id_column = id_column or sheet.columns[0]
    if id_column not in sheet.columns:
        raise LabelColumnError(f"{source}: id column '{id_column}' not found; columns: {', '.join(map(str, sheet.columns))}")
    if columns is not None:
        missing = [c for c in columns if c not in sheet.columns]
        if missing:
            raise LabelColumnError(f"{source}: column '{missing[0]}' not found; columns: "
                                   f"{', '.join(map(str, sheet.columns))}")
    keep = [c for c in (columns if columns is not None else sheet.columns) if c != id_column]
    level = MATCH_MODES[match]
    key_of = (lambda s: str(s)) if level is None else (lambda s: tcga_id(s, level))
    sheet_keys = sheet[id_column].astype(str).map(key_of)
    sheet = sheet.assign(_key=sheet_keys.to_numpy()).drop_duplicates("_key").set_index("_key")[keep]
    sample_keys = pd.Index([key_of(s) for s in adata.obs_names])
    pos = sheet.index.get_indexer(sample_keys)
    matched = int((pos >= 0).sum())
    if matched == 0:
        raise LabelMatchError(
            f"{source}: no sample id matches the expression data (sheet ids e.g. "
            f"{', '.join(map(str, sheet.index[:3]))}; data ids e.g. {', '.join(map(str, adata.obs_names[:3]))}"
            + ("; TCGA barcodes? try match='tcga_sample' or 'tcga_patient'" if str(adata.obs_names[0]).upper().startswith("TCGA") and level is None else "")
            + ")")
    out = adata.copy()
    joined = sheet.reindex(sample_keys)
    joined.index = out.obs_names
    for c in keep:
        out.obs[c] = joined[c].to_numpy()
    info = out.uns.setdefault("exprssl", {})
    info["label_match"] = {"matched": matched, "n_samples": int(adata.n_obs), "n_label_rows": int(len(sheet))}
    log.info("%s: labels matched %d of %d samples (%d sheet rows)", source, matched, adata.n_obs, len(sheet))
    return out


def require_label(adata: ad.AnnData, column: str, min_classes: int = 2) -> pd.Series:
    """The label column as strings (missing values dropped later by callers); clear errors otherwise."""
    if column not in adata.obs.columns:
        raise LabelColumnError(f"label column '{column}' not found; available: "
                               f"{', '.join(map(str, adata.obs.columns)) or '(none: add a sample sheet with --labels)'}")
    y = adata.obs[column]
    classes = pd.Series(y).dropna().astype(str).unique()
    if len(classes) < min_classes:
        raise SingleClassError(f"label column '{column}' has {len(classes)} class"
                               f"{'' if len(classes) == 1 else 'es'}"
                               f"{' (' + classes[0] + ')' if len(classes) == 1 else ''}; need at least {min_classes}")
    return y


# ----------------------------------------------------------------------------- entry points
def load_data(path_or_name: str | os.PathLike, *, labels=None, label_id_column: str | None = None,
              match: str = "exact", **read_options: Any) -> ad.AnnData:
    """A file path, or the name of a bundled dataset; optionally join a sample sheet."""
    p = Path(path_or_name)
    if p.exists():
        adata = read(p, **read_options)
    else:
        from . import datasets

        if str(path_or_name) in datasets.names():
            adata = datasets.load(str(path_or_name))
        elif p.suffix:
            raise DataFileError(f"{p}: no such file")
        else:
            raise DataFileError(f"'{path_or_name}' is neither an existing file nor a bundled dataset "
                                f"(bundled: {', '.join(datasets.names())})")
    if labels is not None:
        adata = add_labels(adata, labels, id_column=label_id_column, match=match)
    return adata


def summarize(adata: ad.AnnData, max_classes: int = 50) -> dict[str, Any]:
    """What `exprssl info` prints: shape, value range and scale, label columns with class counts."""
    X = np.asarray(adata.X)
    scale = guess_scale(X)
    sentences = {"counts": "looks like raw counts (CPM + log2 by default)",
                 "log": "looks log-scale (not logged again)",
                 "linear": "looks linear-scale, e.g. TPM/FPKM (log2 by default)",
                 "standardized": "has negative values: looks already standardised"}
    sample = X.ravel()[:: max(1, X.size // 1_000_000)]
    labels, numeric = {}, {}
    for col in adata.obs.columns:
        s = pd.Series(adata.obs[col]).dropna()
        if s.empty:
            continue
        n = s.nunique()
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and n > 10:
            # a measurement (age, purity, ...), not a phenotype to predict: a range, not 40 classes
            numeric[str(col)] = {"n": int(len(s)), "min": float(s.min()), "median": float(s.median()),
                                 "max": float(s.max())}
        elif 2 <= n <= max_classes and n < len(s):
            labels[str(col)] = {str(k): int(v) for k, v in s.astype(str).value_counts().items()}
    return {"n_samples": int(adata.n_obs), "n_genes": int(adata.n_vars), "min": float(X.min()),
            "max": float(X.max()), "median": float(np.median(sample)),
            "fraction_zeros": float((sample == 0).mean()), "scale": scale,
            "scale_description": sentences[scale], "label_columns": labels, "numeric_columns": numeric}
