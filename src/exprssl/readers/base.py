"""What every reader shares: the ``Reader`` interface the registry dispatches to, what a read
returns (a whole ``Matrix``, a ``BlockSource`` for conversion, ``Rows`` for streaming), and the
checks and id handling every format needs."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import DataFileError, TruncatedFileError

log = logging.getLogger("exprssl")
ORIENTATIONS = ("auto", "samples_in_rows", "genes_in_rows")


class ReadRequest(NamedTuple):
    """What ``exprssl.read_file`` was asked for; each reader uses what applies to its format."""

    orientation: str = "auto"
    samples: Any = None  # ids or positions to keep (a reader may apply them while reading)
    genes: Any = None
    sample_id_column: str | None = None
    sheet_keys: Any = None  # a sample sheet's ids and match mode, to orient a table
    layer: str | None = None  # an AnnData layer read as X (h5ad only)


class Matrix(NamedTuple):
    """A whole-matrix read: samples x genes as the file holds them, ids not yet cleaned (the
    registry's ``read_file`` strips them, merges duplicate genes and checks the values)."""

    adata: ad.AnnData
    format: str  # recorded in uns["exprssl"]["format"]
    orientation: str = ""  # a table's orientation decision and its reason
    selected: bool = False  # samples= / genes= already applied while reading


class BlockSource:
    """What ``exprssl.store.convert`` reads: ids, the dtype kept on disk, and ``read(s0, s1,
    cols)`` -> samples x genes (``cols`` a sorted selection, None for all) whose sample ranges
    should start on multiples of ``step`` (the source's own chunk width; 1 when rows are cheap to
    cut). ``kind`` is recorded as the store's ``source_format``."""

    def __init__(self, genes, samples, dtype, read_block: Callable, step: int = 1, kind: str = ""):
        self.genes, self.samples = list(genes), list(samples)
        self.dtype, self.read, self.step, self.kind = (
            np.dtype(dtype),
            read_block,
            max(1, int(step)),
            kind,
        )
        self.path: Path | None = None  # named in read errors

    @classmethod
    def in_memory(cls, adata: ad.AnnData, kind: str) -> BlockSource:
        """A matrix already read whole: integer counts are kept as integers on disk."""
        X = adata.X
        integral = X.size and np.all(X >= 0) and X.max() < 2**31 and np.array_equal(X, np.round(X))
        return cls(
            list(adata.var_names),
            list(adata.obs_names),
            np.int32 if integral else np.float32,
            lambda s0, s1, cols: take_columns(X[s0:s1], cols),
            1,
            kind,
        )


def take_columns(block: np.ndarray, cols) -> np.ndarray:
    return block if cols is None else block[:, cols]


class Rows:
    """Rows of a sample-major file read from disk without loading the matrix (what
    ``exprssl.store.ExpressionStore`` streams): its shape, rows per chunk (read whole), gene
    ids, and ``open()`` -> a row reader (``reader[r0:r1]``, ``reader[sorted_index]`` -> dense
    float32)."""

    path: Path
    shape: tuple[int, int]
    chunk_rows: int
    genes: list[str]
    is_h5ad: bool

    def open(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def obs(self) -> pd.DataFrame:
        """Sample metadata (at least the sample ids as the index)."""
        raise NotImplementedError

    def uns(self) -> dict:
        """What ``convert`` recorded about the file, if anything."""
        return {}


class Reader:
    """One input format. Subclasses are registered with ``@register(name, suffixes=...)``
    (``exprssl.readers.register``) and implement ``read``; ``sniff`` recognises a file by its
    content (checked before any suffix), ``blocks`` reads a large file in bounded memory for
    ``convert`` (None: it is read whole), ``rows`` streams it (only where ``streams``), and
    ``read_sheet`` reads a sample sheet (only where ``sheets``)."""

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    gzip: ClassVar[bool] = False  # also read as <suffix>.gz
    directory: ClassVar[bool] = False  # the input is a directory, not a file
    streams: ClassVar[bool] = False  # rows can be read from disk (``rows``)
    always_streams: ClassVar[bool] = False  # streamed whenever it is given (a store)
    sheets: ClassVar[bool] = False  # sample sheets are written in it (``read_sheet``)
    layers: ClassVar[bool] = False  # holds AnnData layers, one of which can be read as X

    @classmethod
    def sniff(cls, path: Path) -> bool:
        """Whether ``path`` is, by its content, of this format; never raises."""
        return False

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        raise NotImplementedError

    def blocks(self, path: Path) -> AbstractContextManager[BlockSource] | None:
        """The source for ``convert``, opened, its layout checked; None when the format is read
        whole (``convert`` then reads it with ``exprssl.read_file``)."""
        return None

    def rows(self, path: Path) -> Rows | None:
        return None

    def read_sheet(self, path: Path) -> pd.DataFrame:
        """A sample sheet: every cell as written (strings), the header's names, no index."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- shared checks
_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO) or a shell pipe"),
    (stat.S_ISCHR, "a character device (such as /dev/urandom or a terminal)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISBLK, "a block device"),
)
_STANDARD_INPUT = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


def check_file(path: Path) -> None:
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


def open_hdf5(path: Path, kind: str = "HDF5"):
    """``h5py.File(path, 'r')``, or a one-line ``TruncatedFileError`` naming the file."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise TruncatedFileError(
            f"{path}: not a readable {kind} file, truncated or corrupt ({one_line(e)})"
        ) from None


def hdf5_attribute(path: Path, name: str) -> Any:
    """A root attribute of an HDF5 file, or None when the file does not open as HDF5."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get(name)
    except OSError:
        return None


@contextlib.contextmanager
def duplicate_names_allowed() -> Iterator[None]:
    """Silence anndata's 'names are not unique' warning: ``read_file`` merges duplicate genes and
    refuses duplicate samples right after, naming them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*names are not unique")
        yield


def selection(requested, available: pd.Index, what: str, source: str) -> np.ndarray:
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


def stripped_ids(ids, source: str, what: str) -> pd.Index:
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
