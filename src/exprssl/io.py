"""Reading expression data into AnnData (samples x genes, float32) and joining sample sheets.

Formats: ``.h5ad``; ``.csv`` / ``.tsv`` / ``.txt`` (optionally ``.gz``); ``.parquet``; GTEx
``.gct``; ARCHS4 HDF5 (``.h5`` / ``.hdf5``).

Orientation of tables (csv/tsv/parquet): ``orientation="samples_in_rows"`` or
``"genes_in_rows"``; the default ``"auto"`` takes the longer axis as genes (expression tables
have far more genes than samples), ties meaning samples in rows, and logs a WARNING when the
shape makes that a guess (see ``AUTO_MIN_GENES``). The first column holds the ids.

Headers are read as written: pandas would rename duplicate names (``G1`` -> ``G1.1``) before any
check, so duplicate gene ids are merged per ``duplicate_genes`` and duplicate sample ids refused,
wherever they sit. Every bad file gives one ``ExprsslError`` line naming it.

TCGA ids: sample sheets from GDC often key rows by patient (``TCGA-A1-A0SB``) while expression
columns carry full aliquot barcodes (``TCGA-A1-A0SB-01A-11R-A144-07``). ``add_labels(...,
match="tcga_sample")`` matches on the first four barcode fields (``TCGA-A1-A0SB-01``: patient +
sample type, 01 tumour, 11 normal) and ``match="tcga_patient"`` on the first three. GDC-style
pair ids ``"<case>|<sample>"`` are split and the barcode part is used.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import gzip
import logging
import os
import re
import stat
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import anndata as ad
import hdf5plugin  # noqa: F401  registers Blosc: X of a store written by `exprssl convert`
import numpy as np
import pandas as pd

from .errors import (
    ConfigError,
    DataFileError,
    InvalidValuesError,
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
from .validation import check_matrix, check_not_bool, check_unique_samples

log = logging.getLogger("exprssl")

FORMATS = {
    ".h5ad": "h5ad",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".gct": "gct",
    ".h5": "archs4",
    ".hdf5": "archs4",
}
ORIENTATIONS = ("auto", "samples_in_rows", "genes_in_rows")
ARCHS4_GENE_KEYS = ("meta/genes/symbol", "meta/genes/gene_symbol", "meta/genes/genes")
ARCHS4_SAMPLE_KEY = "meta/samples/geo_accession"
# orientation="auto" is a guess, and says so, unless the longer axis (taken as genes) has at least
# this many entries and is at least this many times the shorter one: 20k genes x 100 samples is
# clear, 60 x 30 or 1,500 x 1,200 is not
AUTO_MIN_GENES = 1000
AUTO_MIN_RATIO = 1.5


# ----------------------------------------------------------------------------- format detection
def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise UnknownFormatError(
        f"{path}: unknown format '{''.join(path.suffixes) or '(no extension)'}'; "
        f"supported: {', '.join(sorted(FORMATS))} (csv/tsv/txt/gct also .gz)"
    )


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO) or a shell pipe"),
    (stat.S_ISCHR, "a character device (such as /dev/urandom or a terminal)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
)


_STANDARD_INPUT = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


def _check_file(path: Path) -> None:
    """A regular, non-empty, readable file, or one line saying what ``path`` is instead: pipes,
    FIFOs, /dev/stdin and devices have no size and cannot be read twice (the format is sniffed
    from the start of the file, then the file is read), so they are named, not called empty."""
    if str(path) in _STANDARD_INPUT:
        raise DataFileError(
            f"{path}: standard input cannot be read: exprssl recognises the format from the "
            "file name and reads the file more than once; save the data to a file first"
        )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise DataFileError(f"{path}: a symbolic link to a missing file") from None
        raise DataFileError(f"{path}: no such file") from None
    except OSError as e:
        what = "a symbolic link loop" if e.errno == errno.ELOOP else (e.strerror or one_line(e))
        raise DataFileError(f"{path}: cannot be read ({what})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataFileError(f"{path}: is a directory, expected a file")
    for test, what in _SPECIAL_FILES:
        if test(info.st_mode):
            raise DataFileError(
                f"{path}: is {what}, not a regular file; exprssl reads files it can open "
                "more than once: save the data to a file first"
            )
    if info.st_size == 0:
        raise DataFileError(f"{path}: file is empty")
    try:
        open(path, "rb").close()
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e.strerror or one_line(e)})") from None


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's text on one line: parsers put newlines and schema dumps into theirs."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_strings(values: np.ndarray, source: str = "data") -> np.ndarray:
    """HDF5 string datasets (fixed-length bytes or variable-length objects) as Python ``str``."""
    a = np.asarray(values)
    try:
        if a.dtype.kind == "S":
            return np.char.decode(a, "utf-8").astype(object)
        if a.dtype.kind == "O":
            return np.array(
                [x.decode() if isinstance(x, bytes) else str(x) for x in a], dtype=object
            )
    except UnicodeDecodeError as e:
        raise DataFileError(f"{source}: ids are not UTF-8 text ({one_line(e)})") from None
    return a


# ----------------------------------------------------------------------------- text tables
_SNIFF_BYTES = 1 << 16
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed data (name it .gz)",
    b"PAR1": "a parquet file (name it .parquet)",
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (name it .h5ad or .h5)",
    b"PK\x03\x04": "a zip archive or Excel workbook (export it as csv)",
}
_COMPRESSION_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def _is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _truncated(path: Path, error: BaseException) -> TruncatedFileError:
    return TruncatedFileError(
        f"{path}: compressed file is truncated, corrupt or not gzip ({one_line(error)})"
    )


def _not_utf8(path: Path, error: UnicodeDecodeError) -> DataFileError:
    return DataFileError(
        f"{path}: not UTF-8 text (invalid byte 0x{error.object[error.start]:02x}): "
        "binary, or another encoding such as Latin-1; save it as UTF-8"
    )


def _text_encoding(path: Path) -> str:
    """Sniff the start of a text table: UTF-16 with a byte-order mark (Excel's 'Unicode text') or
    UTF-8; binary files (NUL bytes) and other encodings are refused here, naming the file, instead
    of surfacing later as a decode error or as one garbled column."""
    try:
        with gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except _COMPRESSION_ERRORS as e:
        raise _truncated(path, e) from None
    if not head:
        raise DataFileError(f"{path}: file is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    kind = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    if kind is not None:
        raise DataFileError(f"{path}: not a text file: looks like {kind}")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataFileError(
            f"{path}: not a text file (NUL byte at offset {nul}): binary, or UTF-16 "
            "without a byte-order mark"
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    return "utf-8"


class Dialect(NamedTuple):
    """How a text table is written: what every text reader (expression tables, GCT, sample
    sheets, ``exprssl convert``) learns in one place, ``sniff_dialect``."""

    sep: str
    decimal: str = "."
    skip_lines: int = (
        0  # lines before the header: '#' comments (featureCounts' command line), GCT's two
    )


SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+(?:[eE][-+]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[-+]?\d*\.\d+(?:[eE][-+]?\d+)?$")


def _head_lines(path: Path, encoding: str, n: int = 64) -> list[str]:
    opener = gzip.open if _is_gzip(path) else open
    text_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    lines = []
    try:
        with opener(path, "rt", encoding=text_encoding, newline="") as fh:
            for line in fh:
                lines.append(line.rstrip("\r\n"))
                if len(lines) >= n:
                    break
    except _COMPRESSION_ERRORS as e:
        raise _truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    return lines


def _split_line(line: str, sep: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return line.split(sep)


def sniff_dialect(path: Path, fmt: str, encoding: str, skip_lines: int = 0) -> Dialect:
    """Separator, decimal mark and leading comment lines of a text table, in one place.

    Leading lines starting with ``#`` are comments (featureCounts writes its command line
    there). The extension's separator (comma for .csv, tab otherwise) is kept when the header
    and the first rows split into the same number of fields with it; else the one of comma,
    tab and semicolon that does (European exports: semicolons, decimal commas). Decimal commas
    are recognised in tables not separated by commas, when number cells use commas and none
    a decimal point."""
    lines = _head_lines(path, encoding)
    i = skip_lines
    declared = None
    if fmt != "gct":
        if i < len(lines) and re.fullmatch(r"sep=.", lines[i].strip()):  # Excel's separator line
            declared, i = lines[i].strip()[4], i + 1
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            i += 1
    if i > skip_lines and i >= len(lines):
        raise DataFileError(f"{path}: only '#' comment lines, no header row or data")
    header, body = (lines[i] if i < len(lines) else ""), [ln for ln in lines[i + 1 :] if ln.strip()]
    default = "," if fmt == "csv" else "\t"

    def consistent(sep: str) -> bool:
        n = len(_split_line(header, sep))
        return n > 1 and all(len(_split_line(ln, sep)) in (n, n + 1) for ln in body[:20])

    sep = declared or default
    if declared is None and not consistent(default):
        others = [s for s in SEPARATORS if s != default and consistent(s)]
        if others:
            sep = max(others, key=lambda s: len(_split_line(header, s)))
            log.info(
                "%s: read as %s-separated (the header and first rows split that way)",
                path,
                SEPARATORS[sep],
            )
    decimal = "."
    if sep != ",":
        cells = [c.strip().strip('"') for ln in body[:20] for c in _split_line(ln, sep)[1:]]
        commas = [c for c in cells if _DECIMAL_COMMA.match(c)]
        if commas and not any(_DECIMAL_POINT.match(c) for c in cells):
            if all(re.fullmatch(r"[-+]?\d{1,3},\d{3}", c) for c in commas):
                raise DataFileError(
                    f"{path}: numbers such as '{commas[0]}' could have a thousands separator or a "
                    "decimal comma; export them without thousands separators (or with more "
                    "or fewer than 3 decimals)"
                )
            decimal = ","
            log.info("%s: numbers read with decimal commas", path)
    return Dialect(sep, decimal, i)


def _header_fields(path: Path, sep: str, encoding: str, skip_lines: int = 0) -> list[str]:
    """The header row exactly as written: pandas renames duplicate names (``G1`` -> ``G1.1``) and
    empty ones (``Unnamed: 3``) before anything can check them, so the names come from here."""
    opener = gzip.open if _is_gzip(path) else open
    text_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        with opener(path, "rt", encoding=text_encoding, newline="") as fh:
            for _ in range(skip_lines):
                fh.readline()
            header = next(csv.reader(fh, delimiter=sep), None)
    except _COMPRESSION_ERRORS as e:
        raise _truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    except csv.Error as e:
        raise DataFileError(
            f"{path}: could not parse the header row ({one_line(e)}; an unclosed quote?)"
        ) from None
    if header is None:
        raise DataFileError(f"{path}: no header row")
    if not any(h.strip() for h in header):
        raise DataFileError(
            f"{path}: the first line is empty; expected a header row of ids"
            + (f" (line {skip_lines + 1})" if skip_lines else "")
        )
    return header


def _read_delimited(
    path: Path,
    fmt: str,
    *,
    index_col: int | None = 0,
    skip_lines: int = 0,
    as_strings: bool = False,
    what: str = "table",
    id_column: str | None = None,
) -> pd.DataFrame:
    """A csv/tsv table (optionally gzipped) with the header's names as written and string ids.

    The separator, decimal mark and leading comment lines come from ``sniff_dialect``.
    ``index_col`` is the position of the id column (None: no index, e.g. sample sheets), or
    ``id_column`` its name in the header. Value columns without a name are dropped when empty and
    refused when they hold values.
    """
    encoding = _text_encoding(path)
    dialect = sniff_dialect(path, fmt, encoding, skip_lines)
    sep, skip_lines = dialect.sep, dialect.skip_lines
    header = _header_fields(path, sep, encoding, skip_lines)
    if id_column is not None:
        matches = [i for i, h in enumerate(header) if h.strip() == id_column]
        if len(matches) != 1:
            raise LabelColumnError(
                f"{path}: id column '{id_column}' "
                f"{'not found' if not matches else 'appears more than once'} in the header"
            )
        index_col = matches[0]
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            decimal=dialect.decimal,
            index_col=index_col,
            skiprows=skip_lines,
            encoding=encoding,
            dtype=str if as_strings else None,
            low_memory=False,
        )
    except _COMPRESSION_ERRORS as e:
        raise _truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: {what} has no data") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        raise DataFileError(f"{path}: could not parse as {fmt} ({one_line(e)})") from None
    if index_col is None and not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()  # rows one field longer than the header: pandas took the ids as index
        header = ["", *header]
    id_name = (
        header.pop(index_col) if index_col is not None and len(header) == df.shape[1] + 1 else None
    )
    if len(header) != df.shape[1]:
        raise DataFileError(
            f"{path}: the header row has {len(header)} names for {df.shape[1]} value columns"
        )
    df.columns = _stripped(header, str(path), "column")
    unnamed = np.flatnonzero(df.columns == "")
    first_value = 0 if index_col is not None else 1  # a sheet's first column holds the ids
    unnamed_values = unnamed[unnamed >= first_value]
    if len(unnamed_values):  # e.g. a separator at the end of every line: nothing to lose
        empty = df.iloc[:, unnamed_values].isna().all(axis=0).to_numpy()
        if not empty.all():
            col = int(unnamed_values[~empty][0])
            after = f" (after '{df.columns[col - 1]}')" if col > 0 else ""
            raise DataFileError(
                f"{path}: column {col + 1 + (index_col is not None)}{after} has values but "
                "no name in the header row"
            )
        df = df.iloc[:, np.setdiff1d(np.arange(df.shape[1]), unnamed_values)]
    if index_col is None and len(unnamed) and unnamed[0] == 0:
        df.columns = pd.Index(
            ["Unnamed: 0", *df.columns[1:]], dtype=object
        )  # R's write.csv row names
    if df.shape[0] == 0:
        raise DataFileError(f"{path}: {what} has a header row but no data rows")
    if index_col is not None:
        if df.shape[1] == 0:
            raise DataFileError(
                f"{path}: {what} has only an id column, no value columns (separators tried: "
                f"{', '.join(SEPARATORS.values())})"
            )
        if (
            df.index.dtype.kind != "O"
        ):  # ids that parsed as numbers: re-read as written ("001" stays)
            raw = _raw_ids(path, sep, encoding, index_col, skip_lines)
            _check_id_column(df.index, raw, id_name, path)
            df.index = raw if len(raw) == len(df) else df.index
        missing = np.flatnonzero(pd.isna(df.index))
        if len(missing):
            raise DataFileError(f"{path}: data row {missing[0] + 1} has no id in the id column")
        df.index = pd.Index(
            df.index.astype(str), name=id_name or None
        )  # stripped by read(), saying so
        df = _drop_annotation_columns(df, path)
    return df


def _check_id_column(ids: pd.Index, raw: pd.Index, name: str | None, path: Path) -> None:
    """Refuse a first column of measurements taken as ids: a table written without an id column
    would otherwise lose its first sample's values to gene names, and 'duplicate genes' be summed.
    Whole numbers written once each (Entrez gene ids) are ids; repeats or decimals are values."""
    values = np.asarray(ids, dtype=np.float64)
    values = values[np.isfinite(values)]
    repeats = not pd.Index(raw.str.strip()).dropna().is_unique
    decimals = (values != np.round(values)).mean() > 0.5 if len(values) else False
    if repeats or decimals:
        label = f" ('{name}')" if name else ""
        raise DataFileError(
            f"{path}: the first column{label} holds {'repeated' if repeats else 'decimal'} "
            "numbers, not ids: the table seems to have no id column; make the first column "
            "the gene or sample ids"
        )


# annotation columns of count tables (featureCounts: Chr, Start, End, Strand, Length; GCT and
# others: Description, gene names): per-gene facts, not samples
ANNOTATION_COLUMNS = frozenset(
    {
        "chr",
        "chrom",
        "chromosome",
        "start",
        "end",
        "strand",
        "length",
        "description",
        "gene_name",
        "gene_symbol",
        "gene_type",
        "gene_biotype",
        "biotype",
    }
)
_ALIGNMENT_SUFFIX = re.compile(r"\.(?:bam|sam|cram)$", re.IGNORECASE)
_STAR_SUFFIX = re.compile(
    r"[._]?Aligned(?:\.sortedByCoord|\.toTranscriptome)?\.out$", re.IGNORECASE
)
_ALIGNER_SUFFIXES = re.compile(
    r"(?:[._](?:aligned|sorted|sortedbycoord|out|dedup|markdup|rmdup|filtered|"
    r"unique|uniq|primary|mapped|star|hisat2?|bowtie2?))+$",
    re.IGNORECASE,
)


def _drop_annotation_columns(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Read featureCounts-style tables natively: annotation columns (Chr ... Length) dropped,
    samples named by their alignment file (``/data/S1.sorted.bam`` -> ``S1``)."""
    names = pd.Index(df.columns.astype(str))
    annotation = names.str.lower().isin(ANNOTATION_COLUMNS)
    if annotation.all() and len(names) > 1:
        raise DataFileError(
            f"{path}: only annotation columns ({', '.join(names[:6])}), no sample columns"
        )
    if annotation.any() and not annotation.all():
        log.info("%s: annotation columns dropped: %s", path, ", ".join(names[annotation]))
        df = df.loc[:, ~annotation]
        names = names[~annotation]
        df.attrs["genes_in_rows"] = True  # annotation columns describe the rows: genes
    bam = names.str.contains(_ALIGNMENT_SUFFIX)
    if bam.any():
        df.attrs["genes_in_rows"] = True
        base = [_bam_sample_name(n) if is_bam else n for n, is_bam in zip(names, bam, strict=True)]
        df = df.set_axis(pd.Index(base, dtype=object), axis=1)
        log.info(
            "%s: samples named by their alignment files (e.g. %s -> %s)",
            path,
            names[bam][0],
            base[int(np.flatnonzero(bam)[0])],
        )
    return df


def _bam_sample_name(path: str) -> str:
    """``/data/bam/S1Aligned.sortedByCoord.out.bam`` -> ``S1``: basename, alignment extension and
    common aligner suffixes dropped."""
    name = _ALIGNMENT_SUFFIX.sub("", path.replace("\\", "/").rsplit("/", 1)[-1])
    return _ALIGNER_SUFFIXES.sub("", _STAR_SUFFIX.sub("", name)) or name


def _raw_ids(path: Path, sep: str, encoding: str, position: int, skip_lines: int) -> pd.Index:
    """One column of the data rows as strings. Only for numeric-looking ids: a per-column dtype
    in the main read would cost pandas a Series per column (seconds on 20k genes)."""
    ids = pd.read_csv(
        path,
        sep=sep,
        header=None,
        skiprows=skip_lines + 1,
        usecols=[position],
        dtype=str,
        encoding=encoding,
    ).iloc[:, 0]
    return pd.Index(ids.to_numpy(), dtype=object)


# ----------------------------------------------------------------------------- readers
def _numeric_frame(df: pd.DataFrame, source: str) -> np.ndarray:
    """Frame -> float32, naming the first cell that is not a number: text, true/false (pandas
    reads whole columns of them as booleans, which would silently count as 1 and 0), or a number
    beyond float32's range (1e39 would become inf)."""
    flags = np.flatnonzero([pd.api.types.is_bool_dtype(t) for t in df.dtypes])
    if len(flags):
        c = int(flags[0])
        raise NonNumericError(
            f"{source}: true/false value '{str(df.iloc[0, c]).lower()}' at row '{df.index[0]}', "
            f"column '{df.columns[c]}'; expected numbers"
        )
    try:
        X64 = df.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        values = df.to_numpy(dtype=object)
        conv = pd.DataFrame(values).apply(pd.to_numeric, errors="coerce").to_numpy()
        bad = pd.isna(conv) & ~pd.isna(values)
        r, c = np.argwhere(bad)[0]
        raise NonNumericError(
            f"{source}: non-numeric value {values[r, c]!r} at row '{df.index[r]}', "
            f"column '{df.columns[c]}'"
        ) from None
    big = np.isfinite(X64) & (np.abs(X64) > np.finfo(np.float32).max)
    if big.any():
        r, c = np.argwhere(big)[0]
        raise InvalidValuesError(
            f"{source}: value {X64[r, c]:g} at row '{df.index[r]}', column "
            f"'{df.columns[c]}' is beyond float32's range (3.4e38); {int(big.sum())} such "
            "cells: rescale the data"
        )
    return X64.astype(np.float32)


def _orient(df: pd.DataFrame, orientation: str, source: str, sheet_keys=None) -> pd.DataFrame:
    """Samples in rows, the decision and its reason in ``attrs["orientation"]`` (``info`` prints
    it). ``auto``, in order: a table with per-gene annotation columns or columns named by
    alignment files (featureCounts) has genes in rows; with a sample sheet (``sheet_keys``: its
    ids and the match mode comparing them, see ``id_keys``) the axis whose ids the sheet names is
    the samples'; an axis named by gene ids (symbols, Ensembl, Entrez, probe sets, miRNAs) is the
    genes', one named by sample ids (TCGA barcodes, GEO / SRA accessions) the samples'; only when
    neither tells is the longer axis taken as genes, with a warning when that is a guess: the
    longer axis is short (< AUTO_MIN_GENES) or not clearly longer (< AUTO_MIN_RATIO x)."""
    transpose, reason = _orientation(df, orientation, sheet_keys)
    decision = f"{'genes' if transpose else 'samples'} in rows: {reason}"
    if orientation == "auto" and reason.startswith("the longer axis"):
        n_rows, n_cols = df.shape
        longer, shorter = max(n_rows, n_cols), min(n_rows, n_cols)
        if longer < AUTO_MIN_GENES or longer < AUTO_MIN_RATIO * shorter:
            n_samples, n_genes = (n_cols, n_rows) if transpose else (n_rows, n_cols)
            log.warning(
                "%s: orientation 'auto' takes the longer axis as genes, so this %d x %d table is "
                "read as %d samples x %d genes (%s in rows), a guess for a table this shape; "
                "pass --orientation samples_in_rows|genes_in_rows (orientation= in Python), or "
                "--labels with a sample sheet, to choose",
                source,
                n_rows,
                n_cols,
                n_samples,
                n_genes,
                "genes" if transpose else "samples",
            )
    elif orientation == "auto" and not df.attrs.get("genes_in_rows"):
        log.info("%s: read with %s", source, decision)
    out = df.T if transpose else df
    out.attrs = {**df.attrs, "orientation": decision}
    return out


def _orientation(df: pd.DataFrame, orientation: str, sheet_keys) -> tuple[bool, str]:
    """(genes in rows, why): ``_orient``'s rules in their order."""
    if orientation != "auto":
        return orientation == "genes_in_rows", f"--orientation {orientation}"
    if df.attrs.get("genes_in_rows"):
        return True, "featureCounts layout (annotation or alignment-file columns)"
    if sheet_keys is not None:
        keys, match = sheet_keys
        in_rows = int(id_keys(df.index, match).isin(keys).sum())
        in_cols = int(id_keys(df.columns, match).isin(keys).sum())
        if in_rows != in_cols:
            axis = "columns" if in_cols > in_rows else "rows"
            return (
                in_cols > in_rows,
                f"the sample sheet names {max(in_rows, in_cols)} of its {axis}",
            )
    by_ids = _orientation_by_ids(df.index, df.columns)
    if by_ids is not None:
        return by_ids
    return df.shape[0] > df.shape[1], "the longer axis taken as genes (neither axis's names tell)"


def _orientation_by_ids(rows: pd.Index, cols: pd.Index) -> tuple[bool, str] | None:
    """(transpose, why) when the names tell which axis is which: gene ids (symbols, Ensembl,
    Entrez, probe sets, miRNA names) on one axis, or sample ids (TCGA barcodes, GEO / SRA
    accessions) on the other; None when they tell nothing or contradict each other."""
    from .genes import ID_SYSTEM_NAMES, gene_axis_ids
    from .sample_ids import detect_sample_ids

    said = {"rows": [], "columns": []}
    for axis, names in (("rows", rows), ("columns", cols)):
        genes = gene_axis_ids(list(names))
        if genes:
            said[axis].append(("genes", f"its {axis} are named by {ID_SYSTEM_NAMES[genes]}"))
        samples = detect_sample_ids(names)
        if samples:
            said[axis].append(("samples", f"its {axis} are named by {samples}"))
    genes_in_rows = {k == "genes" for k, _ in said["rows"]} | {
        k == "samples" for k, _ in said["columns"]
    }
    if len(genes_in_rows) != 1:  # nothing said, or the names contradict each other
        return None
    return genes_in_rows.pop(), " and ".join(why for _, why in said["rows"] + said["columns"])


def _read_parquet(path: Path, what: str = "table") -> pd.DataFrame:
    """A parquet file as a frame with its column names as stored (pandas refuses duplicates)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read()
        names = table.column_names
        if len(set(names)) < len(names):  # make them unique for pandas, then put them back
            unique = [f"{n}\x1f{i}" for i, n in enumerate(names)]
            df = table.rename_columns(unique).to_pandas()
            df.columns = pd.Index([c.split("\x1f")[0] for c in df.columns], dtype=object)
        else:
            df = table.to_pandas()
    except (OSError, ValueError, TypeError, pa.ArrowException) as e:
        raise TruncatedFileError(
            f"{path}: not a readable parquet file, truncated or corrupt ({one_line(e)})"
        ) from None
    if df.shape[1] == 0:
        raise DataFileError(f"{path}: {what} has no data (no columns)")
    return df


def _read_table(
    path: Path, fmt: str, orientation: str, sample_id_column: str | None, sheet_keys=None
) -> pd.DataFrame:
    source = str(path)
    if fmt == "parquet":
        df = _read_parquet(path)
        if sample_id_column is not None or isinstance(df.index, pd.RangeIndex):
            col = sample_id_column or df.columns[0]
            found = int((df.columns == col).sum())
            if found != 1:
                raise LabelColumnError(
                    f"{path}: id column '{col}' "
                    f"{'appears more than once' if found else 'not found'}; columns: "
                    f"{', '.join(map(str, df.columns[:10]))}"
                )
            df = df.set_index(col)
        if df.shape[0] == 0 or df.shape[1] == 0:
            raise DataFileError(
                f"{path}: table has no data rows or no value columns ({df.shape[0]} x "
                f"{df.shape[1]})"
            )
        if df.index.hasnans:
            raise DataFileError(
                f"{path}: data row {int(np.flatnonzero(df.index.isna())[0]) + 1} has no id"
            )
        df.index = df.index.astype(str)
        df.columns = df.columns.astype(str)
        df = _drop_annotation_columns(df, path)  # as for text tables
    else:
        df = _read_delimited(path, fmt, id_column=sample_id_column)
    return _orient(df, orientation, source, sheet_keys)


def _read_gct(path: Path) -> pd.DataFrame:
    """GCT 1.2: '#1.2', a '<genes><TAB><samples>' line, then Name, Description and one column per
    sample; the dimension line is checked against the table."""
    encoding = _text_encoding(path)
    try:
        with (gzip.open if _is_gzip(path) else open)(path, "rt", encoding=encoding) as fh:
            version, dims_line = fh.readline().strip().lstrip("\ufeff"), fh.readline().strip()
    except _COMPRESSION_ERRORS as e:
        raise _truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    if not version.startswith("#1."):
        raise DataFileError(
            f"{path}: not a GCT file (first line '{version[:20]}', expected '#1.2')"
        )
    if version != "#1.2":
        raise DataFileError(f"{path}: GCT version '{version[:20]}' is not supported, only '#1.2'")
    dims = dims_line.split()
    if len(dims) < 2 or not all(d.isdigit() for d in dims[:2]):
        raise DataFileError(
            f"{path}: line 2 should be the dimension line '<genes><TAB><samples>', "
            f"got '{dims_line[:40]}'"
        )
    df = _read_delimited(path, "gct", skip_lines=2)
    df = df.drop(columns=[c for c in df.columns if str(c).lower() == "description"])
    n_genes, n_samples = int(dims[0]), int(dims[1])
    if df.shape != (n_genes, n_samples):
        raise DataFileError(
            f"{path}: the dimension line says {n_genes} genes x {n_samples} samples, the "
            f"table has {df.shape[0]} genes x {df.shape[1]} samples"
        )
    return df.T


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
        raise DataFileError(
            f"{source}: {len(missing)} requested {what} not in the file, e.g. "
            f"{', '.join(missing[:5])}"
        )
    return pos


def open_hdf5(path: Path, kind: str = "HDF5"):
    """``h5py.File(path, 'r')``, or a one-line ``TruncatedFileError`` naming the file."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise TruncatedFileError(
            f"{path}: not a readable {kind} file, truncated or corrupt ({one_line(e)})"
        ) from None


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
        gi = _selection(genes, all_genes, "genes", source)
        si = _selection(samples, all_samples, "samples", source)
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


def _archs4_sheet_samples(path: Path, ids: pd.Index) -> list[str] | None:
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


@contextlib.contextmanager
def _duplicate_names_allowed():
    """Silence anndata's 'names are not unique' warning: ``read`` merges duplicate genes and
    refuses duplicate samples right after, naming them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*names are not unique")
        yield


def _read_h5ad(path: Path) -> ad.AnnData:
    check_h5ad(path)
    try:
        with _duplicate_names_allowed():
            adata = ad.read_h5ad(path)
    except MemoryError:
        raise
    except Exception as e:  # anndata raises many types on malformed content; none is a bug of ours
        raise TruncatedFileError(
            f"{path}: not a readable h5ad file, truncated or corrupt ({one_line(e)})"
        ) from None
    if adata.X is None:
        raise DataFileError(f"{path}: h5ad file has no X matrix")
    check_not_bool(adata.X.dtype, str(path))
    if hasattr(adata.X, "toarray"):
        adata.X = adata.X.toarray()
    adata.X = np.asarray(adata.X, dtype=np.float32)
    return adata


def read(
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
) -> ad.AnnData:
    """Read an expression file as AnnData: samples in ``obs``, genes in ``var``, float32 ``X``.

    ``sheet_keys`` (set by ``load_data`` from a sample sheet) lets ``orientation="auto"`` take
    the axis whose ids the sheet names as samples.

    Ensembl version suffixes are stripped and duplicate gene ids merged by ``duplicate_genes``
    (sum, mean, first or error). ``samples`` / ``genes`` select a subset (ARCHS4 reads only
    that subset from disk). Raises an ``exprssl.errors`` exception naming the file on bad input.

    Parameters
    ----------
    path
        The expression file: h5ad, csv, tsv, parquet, gct (csv/tsv/gct also .gz) or ARCHS4 HDF5.
    format
        The file format (as ``FORMATS``' values); None takes it from the file name.
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

    Returns
    -------
    anndata.AnnData
        Samples x genes, float32 ``X``.

    Raises
    ------
    exprssl.errors.ExprsslError
        A subclass naming the file and the problem (format, values, duplicates, ...).
    """
    path = Path(path)
    _check_file(path)
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"{path}: orientation must be one of {', '.join(ORIENTATIONS)}, got '{orientation}'"
        )
    fmt = format or detect_format(path)
    if fmt not in FORMATS.values():
        raise UnknownFormatError(
            f"{path}: unknown format '{fmt}'; supported: {', '.join(sorted(set(FORMATS.values())))}"
        )
    source = str(path)
    orientation_reason = ""
    if fmt == "h5ad":
        adata = _read_h5ad(path)
    elif fmt == "archs4":
        if samples is None and sheet_keys is not None and sheet_keys[1] == "exact":
            samples = _archs4_sheet_samples(path, sheet_keys[0])
        adata = read_archs4(path, samples=samples, genes=genes)
        samples = genes = None  # already applied on disk
    else:
        df = (
            _read_gct(path)
            if fmt == "gct"
            else _read_table(path, fmt, orientation, sample_id_column, sheet_keys)
        )
        orientation_reason = df.attrs.get("orientation", "")
        check_unique_samples(df.index, source)
        X = _numeric_frame(df, source)
        with _duplicate_names_allowed():
            adata = ad.AnnData(
                X=X, obs=pd.DataFrame(index=df.index), var=pd.DataFrame(index=df.columns)
            )
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise DataFileError(f"{path}: no samples or no genes ({adata.n_obs} x {adata.n_vars})")
    with _duplicate_names_allowed():
        adata.obs_names = _stripped(adata.obs_names, source, "sample")
        blank = np.flatnonzero(adata.obs_names == "")
        if len(blank):
            raise DataFileError(f"{path}: sample {blank[0] + 1} has a blank id (only spaces)")
        check_unique_samples(adata.obs_names, source)
        adata.var_names = strip_version(list(_stripped(adata.var_names, source, "gene")))
    adata = collapse_duplicates(adata, duplicate_genes, source)
    if samples is not None:
        adata = adata[_selection(samples, pd.Index(adata.obs_names), "samples", source)].copy()
    if genes is not None:
        adata = adata[:, _selection(genes, pd.Index(adata.var_names), "genes", source)].copy()
    check_matrix(
        adata.X,
        source,
        samples=adata.obs_names,
        genes=adata.var_names,
        counts_expected=counts_expected,
    )
    adata.uns["exprssl"] = {"source": source, "format": fmt}
    if orientation_reason:
        adata.uns["exprssl"]["orientation"] = orientation_reason
    return adata


def _stripped(ids, source: str, what: str) -> pd.Index:
    """Ids as strings without surrounding whitespace (``'S1 '`` and ``'S1'`` are one sample: a
    sheet typed by hand must still match); says so when any had some."""
    ids = pd.Index(ids).astype(str)
    stripped = ids.str.strip()
    changed = int((stripped != ids).sum())
    if changed:
        log.info(
            "%s: %d %s ids had surrounding whitespace, removed (e.g. %r)",
            source,
            changed,
            what,
            ids[np.flatnonzero(stripped != ids)[0]],
        )
    return stripped


def id_keys(ids, match: str = "exact") -> pd.Index:
    """The keys sample ids are matched on: stripped strings, cut to the TCGA level for
    ``match="tcga_sample"`` / ``"tcga_patient"``."""
    keys = pd.Index(ids).astype(str).str.strip()
    level = MATCH_MODES[match]
    return keys if level is None else keys.map(lambda s: tcga_id(s, level))


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename): an existing file is never left half-written."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return path


# ----------------------------------------------------------------------------- labels
def tcga_id(barcode: str, level: str = "sample") -> str:
    """Cut a TCGA barcode to ``patient`` (3 fields) or ``sample`` (4 fields, vial letter gone)."""
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
    """A sample sheet (csv / tsv / parquet) as strings, with its header's names as written."""
    _check_file(path)
    fmt = detect_format(path)
    if fmt == "parquet":
        df = _read_parquet(path, "sample sheet")
        if not isinstance(df.index, pd.RangeIndex):
            df = df.reset_index()
        if df.empty:
            raise DataFileError(f"{path}: sample sheet has no data rows")
    elif fmt in ("csv", "tsv"):
        df = _read_delimited(path, fmt, index_col=None, as_strings=True, what="sample sheet")
    else:
        raise UnknownFormatError(f"{path}: sample sheets must be csv, tsv or parquet, not {fmt}")
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


MISSING_LABELS = frozenset({"", "nan", "NaN", "NA", "N/A", "None", "<NA>"})


def label_values(values, column: str, *, quiet: bool = False) -> pd.Series:
    """A label column as class names, the same for ``exprssl info`` and the benchmark: strings
    without surrounding whitespace (``'Tumor '`` is ``'Tumor'``), missing values (empty, NA,
    nan) as NaN. Says so, in one warning each, when whitespace was removed and when classes
    differ only in upper/lower case (kept apart: ``'tumor'`` and ``'Tumor'`` may be a typo or
    two classes; the sheet decides)."""
    raw = pd.Series(values)
    text = raw.astype(str).str.strip()
    missing = raw.isna().to_numpy() | text.isin(MISSING_LABELS).to_numpy()
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
        spaced = (raw.astype(str) != text).to_numpy() & ~missing
        if spaced.any():
            log.warning(
                "label column '%s': %d values had surrounding spaces, removed (e.g. %r -> %r)",
                column,
                int(spaced.sum()),
                str(raw[spaced].iloc[0]),
                text[spaced].iloc[0],
            )
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


def looks_continuous(values: pd.Series) -> int | None:
    """The number of distinct values when a label column is a measurement (age, purity) rather
    than classes: all numbers, more than 10 distinct ones. None otherwise."""
    s = pd.Series(values).dropna()
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
            + (", ".join(map(str, adata.obs.columns)) or "(none: add a sample sheet with --labels)")
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
def load_data(
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
        Passed to ``read``.

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
        adata = read(p, **read_options)
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
            x = pd.to_numeric(s)
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
