"""Out-of-core expression data: a compressed, row-chunked AnnData store, and streaming from it.

ARCHS4 ships genes x samples, gzip-chunked, so reading one sample touches every gene chunk.
``convert`` rewrites such a matrix once as samples x genes: an ``.h5ad`` that anndata and scanpy
open directly (``anndata.read_h5ad(path, backed="r")``), ``X`` a dense dataset chunked by rows and
compressed, integer counts kept as integers, sample ids in ``obs``, genes in ``var``, and the
conversion's choices (source, gene selection, codec) in ``uns["exprssl_store"]``. Conversion reads
the source in its own chunk order, in bounded memory, and resumes after an interruption.
``StreamingRows`` then feeds pretraining by block-shuffled chunks through a shuffle buffer,
preprocessing on the fly, so peak memory does not grow with the number of samples. Any other
h5ad (dense or CSR ``X``) streams the same way in backed mode, and so do stores written by 0.2
(a private HDF5 layout, ``.h5`` with a ``format`` attribute).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import h5py
import hdf5plugin  # registers the Blosc filters a store's X is compressed with
import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .errors import (
    ConfigError,
    DataFileError,
    ExprsslError,
    OutputPathError,
    TruncatedFileError,
    UnknownFormatError,
)
from .readers import BlockSource, Rows, by_suffix, open_blocks, open_rows, sniff
from .readers.base import one_line
from .readers.h5ad import H5AD_CHUNK_ROWS as H5AD_CHUNK_ROWS  # re-exported
from .readers.h5ad import STORE_KEY
from .readers.store import LEGACY_STORE_FORMAT as LEGACY_STORE_FORMAT  # re-exported
from .readers.store import is_store as is_store  # re-exported
from .utils import (
    _umask,
    atomic_write_text,
    available_memory,
    make_parents,
    remove_empty,
    room_errors,
)
from .validation import check_streamed_h5ad, check_top_genes, check_unique_samples

log = logging.getLogger("exprssl")
STORE_FORMAT = "exprssl-store-2"  # uns["exprssl_store"]["format"] of a store written by convert
# Blosc (hdf5plugin) with bit shuffling: on 20k-gene counts zstd level 1 decompresses at ~6,400
# samples/s on one core, ~6x a SCARF training step on this 2-core CPU, and packs 7.4x (gzip-1: 1,560
# samples/s, 6.9x; lz4: 16,900 samples/s, 5.5x). Readers need the filter: ``import hdf5plugin``
# (exprssl does) before anndata reads X; gzip-1 needs no plugin anywhere.
CODECS = {
    "blosc-zstd": lambda: hdf5plugin.Blosc(
        cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.BITSHUFFLE
    ),
    "blosc-lz4": lambda: hdf5plugin.Blosc(
        cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE
    ),
    "gzip-1": lambda: {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "lzf": lambda: {"compression": "lzf", "shuffle": True},
    "none": lambda: {},
}
DEFAULT_CODEC = "blosc-zstd"
BLOCK_BYTES = 256 * 2**20  # source values held in memory per conversion block


def read_gene_list(path: str | os.PathLike) -> list[str]:
    """Gene ids from a text file, one per line (blank lines and ``#`` comments skipped; a first
    tab- or comma-separated field is taken, so a table's id column works too)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataFileError(f"{p}: no such gene list") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"{p}: gene list cannot be read as text ({one_line(e)})") from None
    ids = [line.replace(",", "\t").split("\t")[0].strip() for line in lines]
    ids = [g for g in ids if g and not g.startswith("#")]
    if not ids:
        raise DataFileError(f"{p}: gene list is empty (one gene id per line)")
    return ids


def match_gene_list(requested: Sequence[str], available: Sequence[str]) -> np.ndarray:
    """Positions in ``available`` of each requested gene (-1: not there or ambiguous): by name
    (Ensembl versions ignored), then through the identifier table (``genes.match_genes``), so a
    list of symbols selects genes of a source in Ensembl ids."""
    from .genes import match_genes

    return match_genes([str(g) for g in available], [str(g) for g in requested]).index


# ----------------------------------------------------------------------------- conversion
def _disk_dtype(dtype: np.dtype) -> np.dtype:
    """Integers stay integers (counts); anything else becomes float32."""
    return np.dtype(dtype) if np.dtype(dtype).kind in "iu" else np.dtype(np.float32)


def _block_width(source: BlockSource, block_samples: int | None) -> int:
    """Samples per source read: whole chunk columns of the source (each chunk decompressed once),
    about ``BLOCK_BYTES`` of values unless ``block_samples`` says otherwise."""
    unit = source.step
    bytes_per_sample = max(1, len(source.genes)) * source.dtype.itemsize
    if unit * bytes_per_sample > 4 * BLOCK_BYTES:
        log.warning(
            "a source chunk column (%d samples x all %d genes) exceeds the memory per block; "
            "reading across its chunks (slower)",
            source.step,
            len(source.genes),
        )
        unit = 1
    target = block_samples if block_samples else BLOCK_BYTES // bytes_per_sample
    return max(unit, target // unit * unit)


def _warn_unmatched(genes, listed, pos, ambiguous: dict, src: Path) -> None:
    """A listed gene the source lacks, and one that names several of its genes (never guessed),
    said apart: an ambiguous symbol is in the file, under more than one id."""
    name = genes if isinstance(genes, (str, os.PathLike)) else "genes"
    unmatched = [str(g) for g, p in zip(listed, pos, strict=True) if p < 0]
    several = [g for g in unmatched if g in ambiguous]
    missing = [g for g in unmatched if g not in ambiguous]
    if missing:
        log.warning(
            "%s: %d of %d listed genes are not in %s, e.g. %s",
            name,
            len(missing),
            len(listed),
            src,
            ", ".join(missing[:5]),
        )
    if several:
        log.warning(
            "%s: %d listed genes are ambiguous in %s (each names several of its genes, none "
            "kept: list the ids instead), e.g. %s",
            name,
            len(several),
            src,
            "; ".join(f"{g}: {'|'.join(ambiguous[g][:3])}" for g in several[:3]),
        )


def _gene_stats(
    source: BlockSource, width: int, n: int, counts: bool, progress
) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and variance over all samples, in one streaming pass: of log1p(CPM) for
    counts (library sizes need every gene, which full-gene blocks give), else of the values."""
    d = len(source.genes)
    total, total_sq = np.zeros(d), np.zeros(d)
    for s0 in range(0, n, width):
        s1 = min(n, s0 + width)
        v = _read(source, s0, s1, None).astype(np.float32)
        if counts:
            lib = v.sum(axis=1, keepdims=True)
            np.divide(v, lib / 1e6, out=v, where=lib > 0)
            np.log1p(v, out=v)
        total += v.sum(axis=0, dtype=np.float64)
        total_sq += np.einsum("ij,ij->j", v, v, dtype=np.float64)
        if progress:
            progress(s1, n, "scanning genes")
    mean = total / max(n, 1)
    return mean, np.maximum(total_sq / max(n, 1) - mean**2, 0.0)


def _read(source: BlockSource, s0: int, s1: int, cols) -> np.ndarray:
    try:
        return source.read(s0, s1, cols)
    except OSError as e:
        raise TruncatedFileError(
            f"{source.path}: samples {s0}..{s1 - 1} could not be read, truncated or "
            f"corrupt ({one_line(e)})"
        ) from None


def _listed_genes(genes) -> list[str] | None:
    """``convert``'s ``genes`` as a list of ids: a file's read once, a list's as strings."""
    if genes is None:
        return None
    return (
        read_gene_list(genes) if isinstance(genes, (str, os.PathLike)) else [str(g) for g in genes]
    )


def _select_genes(
    source: BlockSource,
    src: Path,
    genes,
    listed: list[str] | None,
    top_genes: int | None,
    width: int,
    progress,
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Positions of the genes to keep (source order), their ``var`` table and the record of the
    choice: the listed genes found in the source, then the ``top_genes`` most variable of them.
    ``listed`` is ``_listed_genes(genes)``; ``genes`` names the list in messages."""
    d = len(source.genes)
    keep = np.arange(d)
    record: dict = {"n_source_genes": d}
    if listed is not None:
        from .genes import match_genes

        report = match_genes([str(g) for g in source.genes], [str(g) for g in listed])
        pos = report.index
        found = np.unique(pos[pos >= 0])
        if not len(found):
            raise DataFileError(
                f"{genes if isinstance(genes, (str, os.PathLike)) else 'genes'}: none of the "
                f"{len(listed)} listed genes is in {src} (e.g. {', '.join(listed[:3])}; the source "
                f"has e.g. {', '.join(map(str, source.genes[:3]))})"
            )
        _warn_unmatched(genes, listed, pos, report.ambiguous, src)
        keep = found
        record.update(
            gene_list=str(genes) if isinstance(genes, (str, os.PathLike)) else "given",
            n_listed=len(listed),
            n_listed_found=len(found),
        )
    var = pd.DataFrame(index=pd.Index([str(source.genes[i]) for i in keep], dtype=object))
    check_top_genes(top_genes, len(keep), str(src))  # as pretrain and benchmark refuse it
    if top_genes is not None:
        counts = source.dtype.kind in "iu"
        mean, variance = _gene_stats(source, width, len(source.samples), counts, progress)
        order = np.argsort(-variance[keep], kind="stable")[:top_genes]
        keep = np.sort(keep[order])
        statistic = "log1p_cpm" if counts else "value"
        var = pd.DataFrame(
            {
                f"mean_{statistic}": mean[keep].astype(np.float32),
                f"var_{statistic}": variance[keep].astype(np.float32),
            },
            index=pd.Index([str(source.genes[i]) for i in keep], dtype=object),
        )
        record.update(top_genes=int(top_genes), top_genes_statistic=f"variance of {statistic}")
    record["n_genes"] = len(keep)
    return keep, var, record


def _partial_paths(out: Path) -> tuple[Path, Path]:
    """The unfinished store and its progress record (blocks done), beside the output."""
    return out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.partial.json")


def _conversion_key(src: Path, settings: dict) -> str:
    """What must be unchanged for a partial conversion to be resumed: the source file (path, size,
    modification time) and every setting that shapes the store."""
    st = src.stat()
    text = json.dumps(
        {
            "source": str(src.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "format": STORE_FORMAT,
            **settings,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _resume_point(partial: Path, record: Path, key: str, n: int) -> int:
    """Rows already in ``partial`` when its record matches this conversion, else 0 (and a stale
    partial conversion of ours is removed)."""
    done = 0
    try:
        state = json.loads(record.read_text())
        if state.get("key") == key and partial.is_file():
            done = int(state.get("rows_done", 0))
            with h5py.File(partial, "r") as f:  # a file that no longer opens is started again
                f["X"].shape  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError):
        done = 0
    if not 0 < done <= n:
        _unlink(partial, record)
        return 0
    return done


def _write_record(record: Path, key: str, rows_done: int) -> None:
    atomic_write_text(record, json.dumps({"key": key, "rows_done": rows_done}))


def _unlink(*paths: Path) -> None:
    """Remove the partial store and its record, whichever exist."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _start_store(
    path: Path,
    n: int,
    dtype: np.dtype,
    chunk_rows: int,
    codec: str,
    samples,
    var: pd.DataFrame,
    uns: dict,
) -> None:
    """An AnnData file with an empty row-chunked, compressed ``X`` and its final obs, var, uns."""
    from anndata.io import write_elem

    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        X = f.create_dataset(
            "X",
            shape=(n, len(var)),
            dtype=dtype,
            chunks=(min(chunk_rows, max(n, 1)), max(len(var), 1)),
            **dict(CODECS[codec]()),
        )
        X.attrs["encoding-type"], X.attrs["encoding-version"] = "array", "0.2.0"
        write_elem(f, "obs", pd.DataFrame(index=pd.Index([str(s) for s in samples], dtype=object)))
        write_elem(f, "var", var)
        write_elem(f, "uns", {STORE_KEY: uns})


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    genes: str | os.PathLike | Sequence[str] | None = None,
    top_genes: int | None = None,
    chunk_rows: int = 256,
    block_samples: int | None = None,
    codec: str = DEFAULT_CODEC,
    progress: Callable[[int, int, str], object] | None = None,
    orientation: str = "auto",
) -> Path:
    """Write ``src`` as a sample-major AnnData store at ``out`` (an ``.h5ad``).

    ``genes`` (a file of gene ids, one a line, or a list) keeps the listed genes; ``top_genes``
    keeps the N most variable (of the listed ones), chosen in one extra streaming pass. The source
    is read in blocks of whole chunk columns (``block_samples`` rounded to them; default: about
    256 MB of values), checked (layout, ids, duplicate genes) before anything is written. The
    store grows as a hidden partial file beside ``out`` with a record of the blocks done: run
    the same conversion again after an interruption and it resumes there; the finished store is
    renamed into place. ``progress(done, total, stage)`` is called after each block.

    Parameters
    ----------
    src
        The expression file to convert (any format ``exprssl.read_file`` takes, or an ARCHS4 file).
    out
        The ``.h5ad`` store to write.
    genes
        Genes to keep: a file of ids, one a line, or a list; None keeps all.
    top_genes
        Keep the N most variable genes; None keeps all.
    chunk_rows
        Samples per on-disk chunk.
    block_samples
        Samples read per block; None for about 256 MB of values.
    codec
        The chunks' compression.
    progress
        Called as ``progress(done, total, stage)`` after each block.
    orientation
        As in ``exprssl.read_file``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    exprssl.errors.ExprsslError
        Bad input (naming the file), or an ``OutputPathError`` for an ``out`` it may not write.
    """
    src, out = Path(src), Path(out)
    _check_conversion(src, out, codec, top_genes, chunk_rows, block_samples)
    with open_blocks(src, orientation) as source:
        source.path = src
        if len(set(source.genes)) != len(source.genes):
            raise DataFileError(
                f"{src}: duplicated gene ids; collapse them first (exprssl.read_file, then write "
                "h5ad)"
            )
        check_unique_samples(source.samples, str(src))
        n = len(source.samples)
        width = _block_width(source, block_samples)
        listed = _listed_genes(genes)
        settings = {
            "genes": _genes_digest(listed),
            "top_genes": top_genes,
            "chunk_rows": chunk_rows,
            "block": width,
            "codec": codec,
            "orientation": orientation,
        }
        key = _conversion_key(src, settings)
        partial, record = _partial_paths(out)
        created = make_parents(out)
        try:
            with room_errors(out, partial):  # out of room: one line, and no partial store left
                _copy(
                    source,
                    src,
                    out,
                    partial,
                    record,
                    key,
                    n,
                    width,
                    genes,
                    listed,
                    top_genes,
                    chunk_rows,
                    codec,
                    progress,
                )
                os.chmod(partial, 0o666 & ~_umask())
                os.replace(partial, out)
        except ExprsslError:  # a broken source, a bad selection, a full disk: resuming would not
            _unlink(partial, record)  # help (and a write that failed may have damaged the file)
            remove_empty(created)
            raise
        record.unlink()
    return out


def _check_conversion(
    src: Path, out: Path, codec: str, top_genes, chunk_rows: int, block_samples
) -> None:
    """``convert``'s options and paths, before anything is read or written."""
    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got '{codec}'")
    if top_genes is not None and top_genes < 1:
        raise ConfigError(f"top_genes must be >= 1, got {top_genes}")
    if chunk_rows < 1 or (block_samples is not None and block_samples < 1):
        raise ConfigError(
            f"chunk_rows and block_samples must be >= 1, got {chunk_rows} and {block_samples}"
        )
    if not src.exists():
        raise DataFileError(f"{src}: no such file")
    if out.exists() and out.resolve() == src.resolve():
        raise OutputPathError(f"{out}: the output would replace the input; choose another --out")
    if out.is_dir():
        raise OutputPathError(
            f"{out}: is a directory; the store is one file, e.g. {out / 'store.h5ad'}"
        )
    if out.suffix != ".h5ad":
        raise ConfigError(
            f"{out}: a store is an AnnData file: name it .h5ad (.h5 means an ARCHS4 file)"
        )


def _copy(
    source: BlockSource,
    src: Path,
    out: Path,
    partial: Path,
    record: Path,
    key: str,
    n: int,
    width: int,
    genes,
    listed: list[str] | None,
    top_genes,
    chunk_rows: int,
    codec: str,
    progress,
) -> None:
    """Fill the partial store block by block, from where a previous run stopped."""
    done = _resume_point(partial, record, key, n)
    if done:
        log.warning("%s: resuming an interrupted conversion at sample %d of %d", out, done, n)
        with h5py.File(partial, "r") as f:
            var_names = [str(g) for g in pd.Index(_read_var_index(f))]
        cols = match_gene_list(var_names, source.genes)
    else:
        cols, var, selection = _select_genes(source, src, genes, listed, top_genes, width, progress)
        uns = {
            "format": STORE_FORMAT,
            "source": str(src),
            "source_format": source.kind,
            "codec": codec,
            "chunk_rows": int(min(chunk_rows, max(n, 1))),
            "dtype": str(_disk_dtype(source.dtype)),
            "gene_selection": selection,
        }
        _start_store(
            partial, n, _disk_dtype(source.dtype), chunk_rows, codec, source.samples, var, uns
        )
        _write_record(record, key, 0)
    take = None if len(cols) == len(source.genes) else np.asarray(cols)
    with h5py.File(partial, "r+") as f:
        X = f["X"]
        rows = X.chunks[0]
        pos = done  # rows written: whole output chunks (recompressing a chunk twice is slow)
        carry = None  # rows read but short of a whole output chunk, written with the next block
        for s0 in range(pos // width * width, n, width):
            s1 = min(n, s0 + width)
            block = _read(source, s0, s1, take)[
                max(0, pos - s0) :
            ]  # resuming: rows already written
            if carry is not None:
                block = np.concatenate([carry, block])
            end = pos + len(block) if s1 == n else pos + len(block) // rows * rows
            X[pos:end] = block[: end - pos]
            carry = block[end - pos :]
            pos = end
            f.flush()  # the rows are on disk before the record says so
            _write_record(record, key, pos)
            if progress:
                progress(pos, n, "converting")


def _genes_digest(listed: list[str] | None) -> str | None:
    if listed is None:
        return None
    return hashlib.sha256("\n".join(listed).encode()).hexdigest()


def _read_var_index(f: h5py.File) -> pd.Index:
    from anndata.io import read_elem

    return read_elem(f["var"]).index


# ----------------------------------------------------------------------------- reading
def open_streamed(path, stream: bool | None = None) -> ExpressionStore | None:
    """The data at ``path`` opened for streaming from disk, or None to load it in memory.

    A store always streams. An h5ad file streams when ``stream`` is True, or, when it is None,
    when its matrix as dense float32 would take more than a quarter of the available memory
    (loading and preprocessing hold a few copies). Other formats cannot stream.
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path)
    reader = _streaming_reader(p)
    if reader is not None and reader.always_streams:
        return ExpressionStore(p)
    if stream is False:
        return None
    if reader is None:
        if not stream:
            return None
        if not p.is_file():
            raise ConfigError(
                f"{p}: streaming reads a file on disk (an exprssl store or an .h5ad); "
                "bundled datasets are loaded whole"
            )
        raise ConfigError(
            f"{p}: only an exprssl store or an .h5ad file can be streamed; "
            f"write a store once with `exprssl convert {p} --out STORE.h5ad`"
        )
    try:
        store = ExpressionStore(p)
    except (
        DataFileError
    ):  # e.g. a CSC matrix or duplicated genes: loading it whole copes or says why
        if stream:
            raise
        return None
    if stream:
        check_streamed_h5ad(store, str(p))  # what loading it whole refuses (read() checks that)
        return store
    available = available_memory()
    dense = store.n_samples * len(store.genes) * 4
    if available is not None and dense > available / 4:
        log.info(
            "%s: %.1f GB as float32, more than a quarter of the available %.1f GB: streaming it "
            "from disk",
            p,
            dense / 1e9,
            available / 1e9,
        )
        check_streamed_h5ad(store, str(p))
        return store
    return None


def _streaming_reader(path: Path):
    """The reader of a file whose rows can stream from disk (a store, an h5ad), else None."""
    if not path.is_file():
        return None
    try:
        reader = sniff(path) or by_suffix(path)
    except UnknownFormatError:
        return None
    return reader if reader.streams else None


class ExpressionStore:
    """Read access to a store written by ``convert``, or to an h5ad file in backed mode: rows by
    index, genes, sample ids, all without loading the matrix (the format's reader,
    ``exprssl.readers``, reads the rows).

    Parameters
    ----------
    path
        A store written by ``convert``, or an ``.h5ad`` file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DataFileError(f"{self.path}: no such store")
        self._rows: Rows = open_rows(self.path)
        self.is_h5ad = self._rows.is_h5ad
        self.shape, self.chunk_rows = self._rows.shape, self._rows.chunk_rows
        self.genes = self._rows.genes
        self.source = str(self.path)

    def open(self) -> AbstractContextManager:
        """The open file's rows: ``reader[r0:r1]`` or ``reader[sorted_index]`` -> dense float32."""
        return self._rows.open()

    @property
    def n_samples(self) -> int:
        return self.shape[0]

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_samples / self.chunk_rows)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows in the given order, read chunk by chunk: each chunk touched is decompressed once."""
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        chunk = sorted_idx // self.chunk_rows
        with self.open() as X:
            for part in np.split(np.arange(len(idx)), np.flatnonzero(np.diff(chunk)) + 1):
                if not len(part):
                    continue
                r0 = int(chunk[part[0]]) * self.chunk_rows
                block = X[r0 : min(self.n_samples, r0 + self.chunk_rows)]
                out[order[part]] = block[sorted_idx[part] - r0]
        return out

    @property
    def obs(self) -> pd.DataFrame:
        """Sample metadata: an h5ad's ``obs`` table, or a store's sample ids as an empty table."""
        return self._rows.obs()

    @property
    def samples(self) -> list[str]:
        return list(self.obs.index)

    def blocks(self, rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` over all rows in order, whole chunks at a time: bounded memory
        for embedding or scoring a store of any size."""
        rows = max(self.chunk_rows, rows // self.chunk_rows * self.chunk_rows)
        with self.open() as X:
            for r0 in range(0, self.n_samples, rows):
                yield r0, X[r0 : r0 + rows]

    def sample_rows(self, n: int, seed: int = 0, exclude: np.ndarray | None = None) -> np.ndarray:
        """Sorted random rows (none of ``exclude``), drawn from a random quarter-full set of chunks:
        uniform rows of a compendium would decompress every chunk to keep a few rows of each."""
        rng = np.random.default_rng(seed)
        chunks = rng.permutation(self.n_chunks)[: max(1, math.ceil(4 * n / self.chunk_rows))]
        starts = np.sort(chunks) * self.chunk_rows
        candidates = (starts[:, None] + np.arange(self.chunk_rows)).ravel()
        candidates = candidates[candidates < self.n_samples]
        if exclude is not None and len(exclude):
            candidates = np.setdiff1d(candidates, exclude)
        if len(candidates) < n:  # a small store, or one mostly excluded: every row is a candidate
            candidates = np.setdiff1d(
                np.arange(self.n_samples), exclude if exclude is not None else []
            )
        return np.sort(rng.choice(candidates, min(n, len(candidates)), replace=False))

    @property
    def uns(self) -> dict:
        """What ``convert`` recorded (source, gene selection, codec); empty for other files."""
        return self._rows.uns()


class StreamingRows(IterableDataset):
    """Preprocessed batches streamed from a store: chunk order shuffled per epoch, rows shuffled
    within a buffer of ``buffer_chunks`` chunks. Under DDP (and DataLoader workers) each process
    reads a disjoint set of chunks. ``exclude`` rows (the validation set) are skipped."""

    def __init__(
        self,
        store: ExpressionStore,
        preprocessor,
        batch_size: int,
        *,
        buffer_chunks: int = 8,
        seed: int = 0,
        exclude: np.ndarray | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        self.store, self.prep, self.batch_size = store, preprocessor, batch_size
        self.buffer_chunks, self.seed = buffer_chunks, seed
        self.exclude = np.zeros(store.n_samples, dtype=bool)
        if exclude is not None:
            self.exclude[exclude] = True
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def _shard(self) -> tuple[int, int]:
        rank, world = self.rank, self.world_size
        if rank is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world = 0, 1
        info = get_worker_info()
        if info is not None:
            rank, world = rank * info.num_workers + info.id, world * info.num_workers
        return rank, world

    def chunks_for_epoch(self, epoch: int) -> np.ndarray:
        rank, world = self._shard()
        order = np.random.default_rng((self.seed, epoch)).permutation(self.store.n_chunks)
        return order[rank::world]

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as for ``epoch`` (training calls this each epoch, so DataLoader workers, which
        iterate copies of this object, follow too); iterating also advances it by one."""
        self.epoch = epoch

    def __len__(self) -> int:
        rank, world = self._shard()
        n = (self.store.n_samples - int(self.exclude.sum())) / world
        return max(1, int(n // self.batch_size))

    def __iter__(self) -> Iterator[torch.Tensor]:
        epoch = self.epoch
        self.epoch += 1
        rng = np.random.default_rng((self.seed, epoch, 1))
        cr = self.store.chunk_rows
        chunks = self.chunks_for_epoch(epoch)
        carry: list[np.ndarray] = []  # raw rows left over from the previous buffer (< one batch)
        with self.store.open() as X:
            for b0 in range(0, len(chunks), self.buffer_chunks):
                parts = list(carry)
                for c in np.sort(chunks[b0 : b0 + self.buffer_chunks]):
                    r0, r1 = c * cr, min(self.store.n_samples, (c + 1) * cr)
                    keep = ~self.exclude[r0:r1]
                    if keep.all():
                        parts.append(X[r0:r1])
                    elif keep.any():
                        parts.append(X[r0:r1][keep])
                if not parts:
                    continue
                raw = np.concatenate(parts) if len(parts) > 1 else parts[0]
                # preprocess the buffer once, then gather each batch's shuffled rows: one copy per
                # batch instead of a permuted copy of the whole buffer
                buf = self.prep.transform(raw, self.store.genes)
                order = rng.permutation(len(buf))
                n_full = len(buf) // self.batch_size * self.batch_size
                for s in range(0, n_full, self.batch_size):
                    yield torch.from_numpy(buf[order[s : s + self.batch_size]])
                carry = [raw[order[n_full:]]] if n_full < len(buf) else []
        # the last incomplete batch is dropped: BatchNorm needs >1 sample and batches stay equal
