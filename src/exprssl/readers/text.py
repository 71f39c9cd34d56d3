"""Delimited text tables: csv, tsv / txt / tab (optionally gzipped), featureCounts output.

Everything a text reader learns about a file is sniffed once (``text_encoding``,
``sniff_dialect``): UTF-8 or UTF-16 with a byte-order mark, the separator (comma, tab or
semicolon, whatever the extension), decimal commas, and leading ``#`` comment lines
(featureCounts writes its command line there). Headers are read as written: pandas would rename
duplicate names (``G1`` -> ``G1.1``) and empty ones before anything could check them. Sample
sheets (``exprssl.io``) and GCT files are read with the same ``read_delimited``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
import re
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataFileError, LabelColumnError, TruncatedFileError
from . import register
from .base import Matrix, Reader, ReadRequest, one_line, stripped_ids
from .tables import drop_annotation_columns, frame_matrix, orient

log = logging.getLogger("exprssl")

_SNIFF_BYTES = 1 << 16
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed data (name it .gz)",
    b"PAR1": "a parquet file (name it .parquet)",
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (name it .h5ad or .h5)",
    b"PK\x03\x04": "a zip archive or Excel workbook (export it as csv)",
}
COMPRESSION_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def truncated(path: Path, error: BaseException) -> TruncatedFileError:
    return TruncatedFileError(
        f"{path}: compressed file is truncated, corrupt or not gzip ({one_line(error)})"
    )


def not_utf8(path: Path, error: UnicodeDecodeError) -> DataFileError:
    return DataFileError(
        f"{path}: not UTF-8 text (invalid byte 0x{error.object[error.start]:02x}): "
        "binary, or another encoding such as Latin-1; save it as UTF-8"
    )


def text_encoding(path: Path) -> str:
    """Sniff the start of a text table: UTF-16 with a byte-order mark (Excel's 'Unicode text') or
    UTF-8; binary files (NUL bytes) and other encodings are refused here, naming the file, instead
    of surfacing later as a decode error or as one garbled column."""
    try:
        with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except COMPRESSION_ERRORS as e:
        raise truncated(path, e) from None
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
        raise not_utf8(path, e) from None
    return "utf-8"


class Dialect(NamedTuple):
    """How a text table is written: what every text reader (expression tables, GCT, sample
    sheets, ``exprssl convert``) learns in one place, ``sniff_dialect``."""

    sep: str
    decimal: str = "."
    skip_lines: int = (
        0  # lines before the header: '#' comments (featureCounts' command line), GCT's two
    )
    thousands: str | None = None  # '.' in European exports that group digits: 12.034,5


SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon"}
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+(?:[eE][-+]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[-+]?\d*\.\d+(?:[eE][-+]?\d+)?$")


def _head_lines(path: Path, encoding: str, n: int = 64) -> list[str]:
    opener = gzip.open if is_gzip(path) else open
    text_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    lines = []
    try:
        with opener(path, "rt", encoding=text_encoding, newline="") as fh:
            for line in fh:
                lines.append(line.rstrip("\r\n"))
                if len(lines) >= n:
                    break
    except COMPRESSION_ERRORS as e:
        raise truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    return lines


def _split_line(line: str, sep: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return line.split(sep)


_GROUPED = re.compile(r"^[-+]?[1-9]\d{0,2}(?:\.\d{3})+(?:,\d+)?$")  # 1.523, 12.034.567, 1.523,5


def _thousands(path: Path, cells: list[str], ambiguous_refused: bool) -> bool:
    """Whether number cells group thousands with '.' (and so use decimal commas): certain when a
    cell has two groups (12.034.567) or a group and a decimal comma (1.523,5), and every dotted
    cell is grouped. Cells that only look grouped (1.523, and no 0.5 or 1.52 beside them) could
    be either: in a semicolon table (a European export) refused in one line instead of read as
    1.523 or 1523; elsewhere (tab tables of 3-decimal values) read with a decimal point."""
    dotted = [c for c in cells if "." in c and _NUMBER.match(c)]
    if not dotted or not all(_GROUPED.match(c) for c in dotted):
        return False
    if any(c.count(".") > 1 or "," in c for c in dotted):
        return True
    if any(_DECIMAL_COMMA.match(c) for c in cells):  # 523,25 beside 1.523: grouped
        return True
    if not ambiguous_refused:
        return False
    raise DataFileError(
        f"{path}: numbers such as '{dotted[0]}' could have a thousands separator or a decimal "
        "point; export them without thousands separators"
    )


_NUMBER = re.compile(r"^[-+]?[\d.,]+(?:[eE][-+]?\d+)?$")


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
        grouped = _thousands(path, cells, ambiguous_refused=sep == ";")
        if grouped:
            return Dialect(sep, ",", i, ".")
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


def header_fields(path: Path, sep: str, encoding: str, skip_lines: int = 0) -> list[str]:
    """The header row exactly as written: pandas renames duplicate names (``G1`` -> ``G1.1``) and
    empty ones (``Unnamed: 3``) before anything can check them, so the names come from here."""
    opener = gzip.open if is_gzip(path) else open
    text_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        with opener(path, "rt", encoding=text_encoding, newline="") as fh:
            for _ in range(skip_lines):
                fh.readline()
            header = next(csv.reader(fh, delimiter=sep), None)
    except COMPRESSION_ERRORS as e:
        raise truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
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


def read_delimited(
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
    encoding = text_encoding(path)
    dialect = sniff_dialect(path, fmt, encoding, skip_lines)
    header = header_fields(path, dialect.sep, encoding, dialect.skip_lines)
    if id_column is not None:
        index_col = _id_position(header, id_column, path)
    df = _parse(path, fmt, dialect, encoding, index_col, as_strings, what)
    if index_col is None and not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()  # rows one field longer than the header: pandas took the ids as index
        header = ["", *header]
    id_name = (
        header.pop(index_col) if index_col is not None and len(header) == df.shape[1] + 1 else None
    )
    df = _named_columns(df, header, index_col, path)
    if df.shape[0] == 0:
        raise DataFileError(f"{path}: {what} has a header row but no data rows")
    if index_col is None:
        return df
    if df.shape[1] == 0:
        raise DataFileError(
            f"{path}: {what} has only an id column, no value columns (separators tried: "
            f"{', '.join(SEPARATORS.values())})"
        )
    return drop_annotation_columns(_id_index(df, path, dialect, encoding, index_col, id_name), path)


def _id_position(header: list[str], id_column: str, path: Path) -> int:
    matches = [i for i, h in enumerate(header) if h.strip() == id_column]
    if len(matches) != 1:
        raise LabelColumnError(
            f"{path}: id column '{id_column}' "
            f"{'not found' if not matches else 'appears more than once'} in the header"
        )
    return matches[0]


def _parse(path, fmt, dialect: Dialect, encoding, index_col, as_strings, what) -> pd.DataFrame:
    """pandas' parse, its errors as one line naming the file."""
    try:
        return pd.read_csv(
            path,
            sep=dialect.sep,
            decimal=dialect.decimal,
            thousands=dialect.thousands,
            index_col=index_col,
            skiprows=dialect.skip_lines,
            encoding=encoding,
            dtype=str if as_strings else None,
            low_memory=False,
        )
    except COMPRESSION_ERRORS as e:
        raise truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: {what} has no data") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        raise DataFileError(f"{path}: could not parse as {fmt} ({one_line(e)})") from None


def _named_columns(df: pd.DataFrame, header: list[str], index_col, path: Path) -> pd.DataFrame:
    """The header's names on the value columns; unnamed ones dropped when empty (a separator at
    the end of every line), refused when they hold values."""
    if len(header) != df.shape[1]:
        raise DataFileError(
            f"{path}: the header row has {len(header)} names for {df.shape[1]} value columns"
        )
    df.columns = stripped_ids(header, str(path), "column")
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
    return df


def _id_index(df, path: Path, dialect: Dialect, encoding, index_col, id_name) -> pd.DataFrame:
    """The id column as string ids, as written (numeric-looking ids re-read: "001" stays)."""
    if df.index.dtype.kind != "O":  # ids that parsed as numbers: re-read as written ("001" stays)
        raw = _raw_ids(path, dialect.sep, encoding, index_col, dialect.skip_lines)
        _check_id_column(df.index, raw, id_name, path)
        df.index = raw if len(raw) == len(df) else df.index
    missing = np.flatnonzero(pd.isna(df.index))
    if len(missing):
        raise DataFileError(f"{path}: data row {missing[0] + 1} has no id in the id column")
    df.index = pd.Index(df.index.astype(str), name=id_name or None)  # stripped by read(), saying so
    return df


# ----------------------------------------------------------------------------- the formats
class _TextTable(Reader):
    """A delimited table, oriented (see ``tables.orient``), the id column first or named."""

    gzip = True
    sheets = True

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        df = read_delimited(path, self.name, id_column=request.sample_id_column)
        df = orient(df, request.orientation, str(path), request.sheet_keys)
        return frame_matrix(df, str(path), self.name)

    def read_sheet(self, path: Path) -> pd.DataFrame:
        return read_delimited(path, self.name, index_col=None, as_strings=True, what="sample sheet")


@register("csv", suffixes=(".csv",))
class CsvReader(_TextTable):
    """Comma-separated values (other separators are recognised too)."""


@register("tsv", suffixes=(".tsv", ".txt", ".tab"))
class TsvReader(_TextTable):
    """Tab-separated values, featureCounts output included."""
