"""Expression data in: the entry points (``read_file``: one file; ``load_dataset``: a file or a
bundled dataset, with its sample sheet), sample sheets joined into ``obs``, label columns as
classes, and what ``exprssl info`` prints.

Reading a file is the readers' job (``exprssl.readers``: one module per format, dispatched by
its registry); this module adds what comes after: a path or a bundled dataset's name resolved,
a sample sheet read and matched to the sample ids, label columns checked.

TCGA ids: sample sheets from GDC often key rows by patient (``TCGA-A1-A0SB``) while expression
columns carry full aliquot barcodes (``TCGA-A1-A0SB-01A-11R-A144-07``). ``add_labels(...,
match="tcga_sample")`` matches on the first four barcode fields (``TCGA-A1-A0SB-01``: patient +
sample type, 01 tumour, 11 normal) and ``match="tcga_patient"`` on the first three. GDC-style
pair ids ``"<case>|<sample>"`` are split and the barcode part is used.
"""

from __future__ import annotations

import logging
import os
import re
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
    SingleClassError,
    UnknownFormatError,
)
from .readers import ORIENTATIONS, by_suffix, detect_format, read_file, sheet_formats, suffix_table
from .readers.archs4 import ARCHS4_GENE_KEYS, ARCHS4_SAMPLE_KEY, archs4_layout, read_archs4
from .readers.base import check_file, decode_strings, one_line, open_hdf5
from .readers.h5ad import check_h5ad
from .readers.tables import ANNOTATION_COLUMNS, AUTO_MIN_GENES, AUTO_MIN_RATIO
from .readers.text import Dialect, sniff_dialect
from .sample_ids import MATCH_MODES, id_keys, tcga_id
from .scale import guess_scale
from .utils import atomic_path, deprecated_alias

log = logging.getLogger("exprssl")
FORMATS = suffix_table()  # file-name suffix -> format name


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename): an existing file is never left half-written."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return path


# ----------------------------------------------------------------------------- labels
def _read_sheet(path: Path) -> pd.DataFrame:
    """A sample sheet (csv / tsv / parquet: ``readers.sheet_formats()``) as strings, with its
    header's names as written."""
    check_file(path)
    reader = by_suffix(path)
    if not reader.sheets:
        *others, last = sheet_formats()
        raise UnknownFormatError(
            f"{path}: sample sheets must be {', '.join(others)} or {last}, not {reader.name}"
        )
    df = reader.read_sheet(path)
    _check_unique_columns(df, str(path))
    return df


def _check_unique_columns(sheet: pd.DataFrame, source: str) -> None:
    names = pd.Index(sheet.columns)
    if not names.is_unique:
        dup = names[names.duplicated()][0]
        raise LabelColumnError(
            f"{source}: column '{dup}' appears {int((names == dup).sum())} times in the "
            "header; rename all but one"
        )


def _check_consistent_duplicates(
    sheet: pd.DataFrame, keys: pd.Series, keep: list, source: str, match: str
) -> None:
    """Rows sharing a sample id must agree on every label kept: otherwise which row wins would be an
    accident of row order."""
    dup = keys.duplicated(keep=False).to_numpy()
    if not dup.any() or not keep:
        return
    rows = sheet.loc[dup, keep].astype(object).where(sheet.loc[dup, keep].notna(), "<missing>")
    counts = rows.groupby(keys[dup].to_numpy(), sort=False).nunique()
    conflict = counts.to_numpy() > 1
    if conflict.any():
        r, c = np.argwhere(conflict)[0]
        key, col = counts.index[r], counts.columns[c]
        values = rows[col][(keys[dup] == key).to_numpy()].unique()
        level = "" if match == "exact" else f" (as compared by match='{match}')"
        raise LabelColumnError(
            f"{source}: sample id '{key}'{level} has {len(values)} different values in "
            f"column '{col}' ({', '.join(map(repr, map(str, values[:3])))}); keep one row per "
            "sample, or select the columns to join"
        )


def add_labels(
    adata: ad.AnnData,
    labels: str | os.PathLike | pd.DataFrame,
    *,
    id_column: str | None = None,
    columns: Sequence[str] | None = None,
    match: str = "exact",
) -> ad.AnnData:
    """Join a sample sheet into ``obs`` on a sample-id column (default: its first column).

    Returns a new AnnData in the same sample order; unmatched samples get missing labels. The
    match count is logged and kept in ``uns["exprssl"]["label_match"]``.

    Parameters
    ----------
    adata
        The expression data.
    labels
        A sample sheet: a path or a DataFrame.
    id_column
        The sheet's sample-id column; None takes its first column.
    columns
        The sheet columns to join; None joins all.
    match
        How sheet ids meet sample ids: ``"exact"``, ``"tcga_sample"`` or ``"tcga_patient"``.

    Returns
    -------
    anndata.AnnData
        A new AnnData with the sheet's columns in ``obs``.

    Raises
    ------
    exprssl.errors.LabelColumnError
        An unknown ``match`` or a column not in the sheet.
    exprssl.errors.LabelMatchError
        No sheet id matches a sample id.
    """
    if isinstance(labels, pd.DataFrame):
        sheet, source = (
            labels.reset_index() if not isinstance(labels.index, pd.RangeIndex) else labels,
            "labels",
        )
    else:
        sheet, source = _read_sheet(Path(labels)), str(labels)
    return _join_sheet(adata, sheet, source, id_column, columns, match)


def _join_sheet(adata, sheet: pd.DataFrame, source: str, id_column, columns, match) -> ad.AnnData:
    """``add_labels`` once the sheet is read (``source`` names it in messages)."""
    if match not in MATCH_MODES:
        raise LabelColumnError(f"match must be one of {', '.join(MATCH_MODES)}, got '{match}'")
    _check_unique_columns(sheet, source)
    id_column = id_column or sheet.columns[0]
    if id_column not in sheet.columns:
        raise LabelColumnError(
            f"{source}: id column '{id_column}' not found; columns: "
            f"{', '.join(map(str, sheet.columns))}"
        )
    if columns is not None:
        missing = [c for c in columns if c not in sheet.columns]
        if missing:
            raise LabelColumnError(
                f"{source}: column '{missing[0]}' not found; columns: "
                f"{', '.join(map(str, sheet.columns))}"
            )
    keep = [c for c in (columns if columns is not None else sheet.columns) if c != id_column]
    level = MATCH_MODES[match]
    sheet = sheet[sheet[id_column].notna().to_numpy()]  # rows without an id label nothing
    sheet_keys = pd.Series(id_keys(sheet[id_column], match), index=sheet.index)
    _check_consistent_duplicates(sheet, sheet_keys, keep, source, match)
    sheet = sheet.assign(_key=sheet_keys.to_numpy()).drop_duplicates("_key").set_index("_key")[keep]
    sample_keys = id_keys(adata.obs_names, match)
    pos = sheet.index.get_indexer(sample_keys)
    matched = int((pos >= 0).sum())
    if matched == 0:
        raise LabelMatchError(
            f"{source}: no sample id matches the expression data (sheet ids e.g. "
            f"{', '.join(map(str, sheet.index[:3]))}; data ids e.g. "
            f"{', '.join(map(str, adata.obs_names[:3]))}"
            + _match_hint(sheet.index, sample_keys, adata, level)
            + ")"
        )
    out = adata.copy()
    joined = sheet.reindex(sample_keys)
    joined.index = out.obs_names
    # one concat, not a column at a time: a clinical sheet has hundreds of columns
    out.obs = pd.concat(
        [out.obs.drop(columns=[c for c in keep if c in out.obs.columns]), joined[keep]], axis=1
    )
    info = out.uns.setdefault("exprssl", {})
    info["label_match"] = {
        "matched": matched,
        "n_samples": int(adata.n_obs),
        "n_label_rows": int(len(sheet)),
    }
    log.info(
        "%s: labels matched %d of %d samples (%d sheet rows)",
        source,
        matched,
        adata.n_obs,
        len(sheet),
    )
    return out


def _match_hint(sheet_keys: pd.Index, sample_keys: pd.Index, adata: ad.AnnData, level) -> str:
    """Why no id matched, when it can be told: case, TCGA barcodes, or the sheet naming genes."""
    if sheet_keys.str.lower().isin(sample_keys.str.lower()).any():
        return "; the ids differ only in upper/lower case: make them agree"
    if str(adata.obs_names[0]).upper().startswith("TCGA") and level is None:
        return "; TCGA barcodes? try match='tcga_sample' or 'tcga_patient'"
    if sheet_keys.isin(pd.Index(adata.var_names)).any():
        return (
            "; the sheet names columns read as genes: pass --orientation "
            "genes_in_rows|samples_in_rows"
        )
    return ""


# TCGA's clinical sheets mark a value nobody recorded in brackets; they are not classes
TCGA_MISSING = frozenset(
    {"[Not Available]", "[Discrepancy]", "[Not Evaluated]", "[Unknown]", "[Not Applicable]"}
)
MISSING_LABELS = frozenset({"", "nan", "NaN", "NA", "N/A", "None", "<NA>"}) | TCGA_MISSING
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")  # zero-width spaces, joiners, BOM


def label_text(values) -> pd.Series:
    """Class names as a reader compares them: one Unicode form (NFC: 'côlon' typed with a
    combining accent is 'côlon'), zero-width characters removed, surrounding whitespace trimmed
    (``'lung\\u200b '`` is ``'lung'``)."""
    text = pd.Series(values).astype(str).str.normalize("NFC")
    return text.str.replace(_INVISIBLE, "", regex=True).str.strip()


def is_missing_label(values) -> np.ndarray:
    """Where a label column holds no value: NaN, empty, NA, or one of TCGA's markers."""
    raw = pd.Series(values)
    return raw.isna().to_numpy() | label_text(raw).isin(MISSING_LABELS).to_numpy()


def label_values(values, column: str, *, quiet: bool = False) -> pd.Series:
    """A label column as class names, the same for ``exprssl info`` and the benchmark: strings
    as ``label_text`` compares them (``'Tumor '`` is ``'Tumor'``), missing values (empty, NA,
    nan, TCGA's ``[Not Available]``...) as NaN. Says so, in one warning each, when whitespace or
    invisible characters were removed and when classes differ only in upper/lower case (kept
    apart: ``'tumor'`` and ``'Tumor'`` may be a typo or two classes; the sheet decides)."""
    raw = pd.Series(values)
    text = label_text(raw)
    missing = is_missing_label(raw)
    out = text.where(~missing)
    numbers = pd.to_numeric(out.dropna(), errors="coerce")
    if len(numbers) and numbers.notna().all():  # class codes: '1' and '1.0' are one class
        canonical = numbers.map(lambda v: f"{v:g}")
        if not quiet and (canonical != out.dropna()).any():
            log.warning(
                "label column '%s': numeric classes written differently (e.g. %r) read as numbers",
                column,
                out.dropna()[canonical != out.dropna()].iloc[0],
            )
        out = out.where(missing, canonical.reindex(out.index))
    if not quiet:
        _say_cleaned(raw, text, missing, column)
        classes = pd.Index(out.dropna().unique())
        folded = classes.str.lower()
        if folded.duplicated().any():
            same = classes[folded == folded[folded.duplicated()][0]]
            log.warning(
                "label column '%s': classes %s differ only in upper/lower case and are kept apart; "
                "make them agree in the sample sheet if they are one class",
                column,
                " and ".join(map(repr, same)),
            )
    return out


def _say_cleaned(raw: pd.Series, text: pd.Series, missing: np.ndarray, column: str) -> None:
    """One warning each for values trimmed of spaces or of invisible characters, one note for
    TCGA's missing-value markers."""
    as_str = raw.astype(str)
    for changed, what in (
        (as_str.str.contains(_INVISIBLE), "invisible (zero-width) characters"),
        (
            as_str.str.normalize("NFC").str.strip() != as_str.str.normalize("NFC"),
            "surrounding spaces",
        ),
    ):
        changed = changed.to_numpy() & ~missing
        if changed.any():
            log.warning(
                "label column '%s': %d values had %s, removed (e.g. %r -> %r)",
                column,
                int(changed.sum()),
                what,
                str(raw[changed].iloc[0]),
                text[changed].iloc[0],
            )
    markers = label_text(raw).isin(TCGA_MISSING)
    if markers.any():
        log.info(
            "label column '%s': %d values are TCGA's missing-value markers (%s), read as missing",
            column,
            int(markers.sum()),
            ", ".join(sorted(set(label_text(raw)[markers]))),
        )


def looks_continuous(values: pd.Series) -> int | None:
    """The number of distinct values when a label column is a measurement (age, purity) rather
    than classes: all numbers, more than 10 distinct ones. None otherwise."""
    s = pd.Series(values).dropna()
    s = s[~is_missing_label(s)]  # an age column with TCGA's '[Not Available]' is still numbers
    if s.empty or pd.api.types.is_bool_dtype(s):
        return None
    numbers = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_numeric_dtype(s) else s
    if numbers.isna().any():
        return None
    n = int(numbers.nunique())
    return n if n > 10 else None


def require_label(adata: ad.AnnData, column: str, min_classes: int = 2) -> pd.Series:
    """The label column as class names (``label_values``); one clear line when it is missing,
    continuous, or has fewer than ``min_classes`` classes."""
    if column not in adata.obs.columns:
        raise LabelColumnError(
            f"label column '{column}' not found; available: "
            + (", ".join(map(str, adata.obs.columns)) or "(none: give a --sample-sheet)")
        )
    n = looks_continuous(adata.obs[column])
    if n is not None:
        raise LabelColumnError(
            f"label column '{column}' looks continuous ({n} distinct values), not a set of "
            "classes; bin it into groups (e.g. age bands) in the sample sheet first"
        )
    y = label_values(adata.obs[column], column)
    classes = y.dropna().unique()
    if len(classes) > 2 and len(classes) == y.notna().sum():
        raise LabelColumnError(
            f"label column '{column}' has a different value for every sample ({len(classes)} of "
            f"{len(classes)}): it looks like an id column, not classes"
        )
    if len(classes) < min_classes:
        raise SingleClassError(
            f"label column '{column}' has {len(classes)} class"
            f"{'' if len(classes) == 1 else 'es'}"
            f"{' (' + classes[0] + ')' if len(classes) == 1 else ''}; need at least {min_classes}"
        )
    return y


# ----------------------------------------------------------------------------- entry points
def load_dataset(
    path_or_name: str | os.PathLike,
    *,
    labels=None,
    label_id_column: str | None = None,
    match: str = "exact",
    **read_options: Any,
) -> ad.AnnData:
    """A file path, or the name of a bundled dataset; optionally join a sample sheet. With a
    sheet and ``orientation="auto"`` (the default), a table is read the way round whose sample
    ids the sheet names.

    Parameters
    ----------
    path_or_name
        An expression file, or a bundled dataset's name (``exprssl.datasets``).
    labels
        A sample sheet (path or DataFrame) to join into ``obs``; None for none.
    label_id_column
        The sheet's sample-id column; None takes its first column.
    match
        How sheet ids are matched to sample ids (as in ``add_labels``).
    **read_options
        Passed to ``read_file``.

    Returns
    -------
    anndata.AnnData
        Samples x genes, with the sheet's columns in ``obs``.

    Raises
    ------
    exprssl.errors.ExprsslError
        A subclass naming the file and the problem.
    """
    p = data_file(path_or_name)
    sheet = None  # a sheet file read to orient the table is joined from that same read
    if p is not None:
        if (
            labels is not None
            and read_options.get("orientation", "auto") == "auto"
            and not isinstance(labels, pd.DataFrame)
            and match in MATCH_MODES
        ):
            sheet = _read_sheet(Path(labels))
            read_options["sheet_keys"] = (_sheet_ids(sheet, label_id_column, match), match)
        adata = read_file(p, **read_options)
    else:
        from . import datasets

        if str(path_or_name) in datasets.names():
            adata = datasets.load(str(path_or_name))
        elif Path(path_or_name).suffix:
            raise DataFileError(f"{path_or_name}: no such file")
        else:
            raise DataFileError(
                f"'{path_or_name}' is neither an existing file nor a bundled dataset "
                f"(bundled: {', '.join(datasets.names())})"
            )
    if sheet is not None:
        adata = _join_sheet(adata, sheet, str(labels), label_id_column, None, match)
    elif labels is not None:
        adata = add_labels(adata, labels, id_column=label_id_column, match=match)
    return adata


def data_file(path_or_name: str | os.PathLike) -> Path | None:
    """The file ``--data`` names, or None for a bundled dataset's name: a directory (say, a
    benchmark's ``--out`` named like the dataset) does not hide the bundled data of that name."""
    p = Path(path_or_name)
    if not (p.exists() or p.is_symlink()):
        return None
    if p.is_dir():
        from . import datasets

        if str(path_or_name) in datasets.names():
            return None
    return p


def _sheet_ids(sheet: pd.DataFrame, id_column: str | None, match: str) -> pd.Index:
    column = id_column if id_column in sheet.columns else sheet.columns[0]
    return id_keys(sheet[column].dropna(), match)


def summarize(adata: ad.AnnData, max_classes: int = 50) -> dict[str, Any]:
    """What `exprssl info` prints: shape, value range and scale, label columns with class counts."""
    X = np.asarray(adata.X)
    scale = guess_scale(
        X,
        source=str(adata.uns.get("exprssl", {}).get("source", "data")),
        samples=adata.obs_names,
        genes=adata.var_names,
    )
    sentences = {
        "counts": "looks like raw counts (CPM + log2 by default)",
        "log": "looks log-scale (not logged again)",
        "linear": "looks linear-scale, e.g. TPM/FPKM (log2 by default)",
        "standardized": "has negative values: looks already standardised",
    }
    sample = X.ravel()[:: max(1, X.size // 1_000_000)]
    labels, numeric = {}, {}
    for col in adata.obs.columns:
        s = pd.Series(adata.obs[col]).dropna()
        if s.empty:
            continue
        if looks_continuous(s) is not None:
            # a measurement (age, purity, ...), not a phenotype to predict: a range, not 40 classes
            x = pd.to_numeric(s[~is_missing_label(s)])
            numeric[str(col)] = {
                "n": int(len(x)),
                "min": float(x.min()),
                "median": float(x.median()),
                "max": float(x.max()),
            }
            continue
        s = label_values(s, str(col), quiet=True).dropna()
        n = s.nunique()
        if 2 <= n <= max_classes and n < len(s):
            label_values(adata.obs[col], str(col))  # the same warnings as the benchmark
            labels[str(col)] = {str(k): int(v) for k, v in s.value_counts().items()}
    return {
        "n_samples": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "min": float(X.min()),
        "max": float(X.max()),
        "median": float(np.median(sample)),
        "fraction_zeros": float((sample == 0).mean()),
        "scale": scale,
        "scale_description": sentences[scale],
        "label_columns": labels,
        "numeric_columns": numeric,
        "orientation": str(adata.uns.get("exprssl", {}).get("orientation", "")),
    }


# the 0.3 names, kept for one release (``exprssl.utils.deprecated_alias``)
read = deprecated_alias(read_file, "exprssl.read", "exprssl.read_file")
load_data = deprecated_alias(load_dataset, "exprssl.load_data", "exprssl.load_dataset")

__all__ = [
    "ANNOTATION_COLUMNS",
    "ARCHS4_GENE_KEYS",
    "ARCHS4_SAMPLE_KEY",
    "AUTO_MIN_GENES",
    "AUTO_MIN_RATIO",
    "FORMATS",
    "MATCH_MODES",
    "ORIENTATIONS",
    "Dialect",
    "add_labels",
    "archs4_layout",
    "check_h5ad",
    "data_file",
    "decode_strings",
    "detect_format",
    "id_keys",
    "TCGA_MISSING",
    "is_missing_label",
    "label_text",
    "label_values",
    "load_data",
    "load_dataset",
    "looks_continuous",
    "one_line",
    "open_hdf5",
    "read",
    "read_file",
    "read_archs4",
    "require_label",
    "sniff_dialect",
    "summarize",
    "tcga_id",
    "write_h5ad",
]
