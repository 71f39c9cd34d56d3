"""Out-of-core expression data: a sample-major chunked HDF5 store, and streaming from it.

ARCHS4 ships genes x samples, gzip-chunked, so reading one sample touches every gene chunk.
``convert`` rewrites such a matrix once, in bounded memory, as samples x genes with row chunks;
``StreamingRows`` then feeds pretraining by block-shuffled chunks through a shuffle buffer,
preprocessing on the fly, so peak memory does not grow with the number of samples. An h5ad
file is already sample-major (dense or CSR ``X``), so it is streamed as it is, in backed mode.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .errors import ConfigError, DataFileError, OutputPathError, TruncatedFileError
from .genes import strip_version
from .io import archs4_layout, check_h5ad, decode_strings, detect_format, one_line, open_hdf5, read
from .utils import atomic_path
from .validation import check_streamed_h5ad, check_unique_samples

log = logging.getLogger("exprssl")
STORE_FORMAT = "exprssl-store-1"
H5AD_CHUNK_ROWS = 256  # rows per shuffled block of an h5ad, whose own HDF5 chunks may be tiny or absent


def _string_dataset(f: h5py.File, name: str, values) -> None:
    f.create_dataset(name, data=np.asarray([str(v) for v in values], dtype=object),
                     dtype=h5py.string_dtype())


def convert(src: str | os.PathLike, out: str | os.PathLike, *, chunk_rows: int = 256,
            block_samples: int = 2048, progress=None, orientation: str = "auto") -> Path:
    """Write ``src`` as a sample-major store at ``out`` (atomically), streaming in sample blocks.

    ARCHS4 HDF5 and h5ad inputs are streamed (``block_samples`` samples in memory at a time);
    tables (csv/tsv/parquet/gct, laid out per ``orientation``) are read whole first, as they fit in
    memory by nature. The source is checked (layout, ids, duplicate genes) before anything is
    written; a read error midway leaves no output behind.
    """
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DataFileError(f"{src}: no such file")
    if out.exists() and out.resolve() == src.resolve():
        raise OutputPathError(f"{out}: the output would replace the input; choose another --out")
    if out.is_dir():
        raise OutputPathError(f"{out}: is a directory; the store is one file, e.g. {out / 'store.h5'}")
    fmt = detect_format(src)
    with _open_source(src, fmt, orientation) as (genes, samples, read_block):
        if len(set(genes)) != len(genes):
            raise DataFileError(f"{src}: duplicated gene ids; collapse them first (exprssl.read, then write h5ad)")
        check_unique_samples(samples, str(src))
        n = len(samples)
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = STORE_FORMAT
            f.attrs["source"] = str(src)
            X = _create(f, n, len(genes), chunk_rows)
            for s0 in range(0, n, block_samples):
                s1 = min(n, s0 + block_samples)
                try:
                    X[s0:s1] = read_block(s0, s1)
                except OSError as e:
                    raise TruncatedFileError(f"{src}: samples {s0}..{s1 - 1} could not be read, truncated or "
                                             f"corrupt ({one_line(e)})") from None
                if progress:
                    progress(s1, n)
            _string_dataset(f, "genes", genes)
            _string_dataset(f, "samples", samples)
    return out


@contextmanager
def _open_source(src: Path, fmt: str, orientation: str):
    """``(genes, samples, read_block(s0, s1) -> float32 samples x genes)`` for ``convert``, after
    checking the source's layout; the file stays open while the caller copies the blocks."""
    if fmt == "archs4":
        with open_hdf5(src) as g:
            genes, samples, dset = archs4_layout(g, src)
            yield (list(strip_version(list(genes))), list(samples),
                   lambda s0, s1: np.asarray(dset[:, s0:s1], dtype=np.float32).T)
    elif fmt == "h5ad":
        import anndata as ad

        check_h5ad(src)
        try:
            a = ad.read_h5ad(src, backed="r")
        except MemoryError:
            raise
        except Exception as e:  # anndata raises many types on malformed content; none is a bug of ours
            raise TruncatedFileError(f"{src}: not a readable h5ad file, truncated or corrupt ({one_line(e)})") from None
        try:
            def block(s0: int, s1: int) -> np.ndarray:
                b = a.X[s0:s1]
                return np.asarray(b.toarray() if hasattr(b, "toarray") else b, dtype=np.float32)

            yield strip_version(list(a.var_names)), list(a.obs_names), block
        finally:
            a.file.close()
    else:
        a = read(src, orientation=orientation)
        yield list(a.var_names), list(a.obs_names), lambda s0, s1: a.X[s0:s1]


def _create(f: h5py.File, n: int, d: int, chunk_rows: int):
    return f.create_dataset("X", shape=(n, d), dtype=np.float32, chunks=(min(chunk_rows, max(n, 1)), d))


def is_store(path) -> bool:
    """Whether ``path`` is a store written by ``convert`` (an HDF5 file with its format tag)."""
    p = Path(path)
    if p.suffix not in (".h5", ".hdf5") or not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            return f.attrs.get("format") == STORE_FORMAT
    except OSError:
        return False


def _available_memory() -> int | None:
    """Bytes a new allocation can get: Linux's MemAvailable counts reclaimable page cache, which
    free pages alone do not (a busy file server has little 'free' memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def open_streamed(path, stream: bool | None = None) -> ExpressionStore | None:
    """The data at ``path`` opened for streaming from disk, or None to load it in memory.

    A store always streams. An h5ad file streams when ``stream`` is True, or, when it is None,
    when its matrix as dense float32 would take more than a quarter of the available memory
    (loading and preprocessing hold a few copies). Other formats cannot stream.
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path)
    if is_store(p):
        return ExpressionStore(p)
    if stream is False:
        return None
    if p.suffix != ".h5ad" or not p.is_file():
        if not stream:
            return None
        if not p.is_file():
            raise ConfigError(f"{p}: streaming reads a file on disk (an exprssl store or an .h5ad); "
                              "bundled datasets are loaded whole")
        raise ConfigError(f"{p}: only an exprssl store or an .h5ad file can be streamed; "
                          f"write a store once with `exprssl convert {p} --out STORE.h5`")
    try:
        store = ExpressionStore(p)
    except DataFileError:  # e.g. a CSC matrix or duplicated genes: loading it whole copes or says why
        if stream:
            raise
        return None
    check_streamed_h5ad(store, str(p))  # what loading it whole refuses
    if stream:
        return store
    available = _available_memory()
    dense = store.n_samples * len(store.genes) * 4
    if available is not None and dense > available / 4:
        log.info("%s: %.1f GB as float32, more than a quarter of the available %.1f GB: streaming it from disk",
                 p, dense / 1e9, available / 1e9)
        return store
    return None


class _RowReader:
    """Dense float32 rows of an open file's ``X``: a store's or dense h5ad's dataset, or an h5ad's
    CSR group (through anndata's backed sparse dataset, which reads only the rows' entries)."""

    def __init__(self, node, path: Path):
        self._path = path
        if isinstance(node, h5py.Dataset):
            self._sparse, self._X = False, node
            return
        encoding = node.attrs.get("encoding-type", "")
        if encoding != "csr_matrix":
            raise DataFileError(f"{path}: X is stored as {encoding or 'an unknown encoding'}, which cannot be "
                                "read by samples; rewrite it once with `exprssl convert` to stream it")
        from anndata.io import sparse_dataset

        self._sparse, self._X = True, sparse_dataset(node)

    def __getitem__(self, idx) -> np.ndarray:
        try:
            block = self._X[idx]
        except OSError as e:  # a chunk that no longer decompresses: the file changed or is damaged
            raise TruncatedFileError(f"{self._path}: rows could not be read, truncated or corrupt "
                                     f"({one_line(e)})") from None
        if self._sparse:
            block = block.toarray()
        return np.asarray(block, dtype=np.float32)


class ExpressionStore:
    """Read access to a store written by ``convert``, or to an h5ad file in backed mode: rows by
    index, genes, sample ids, all without loading the matrix."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DataFileError(f"{self.path}: no such store")
        self.is_h5ad = self.path.suffix == ".h5ad"
        try:
            with h5py.File(self.path, "r") as f:
                if self.is_h5ad:
                    self._open_h5ad(f)
                else:
                    if f.attrs.get("format") != STORE_FORMAT:
                        raise DataFileError(f"{self.path}: not an exprssl store (make one with `exprssl convert`)")
                    self.shape = f["X"].shape
                    self.chunk_rows = f["X"].chunks[0]
                    self.genes = list(decode_strings(f["genes"][:], str(self.path)))
        except OSError as e:
            raise TruncatedFileError(f"{self.path}: not a readable HDF5 file ({one_line(e)})") from None
        except (KeyError, TypeError, ValueError, IndexError) as e:  # the groups or attributes are not as written
            kind = "h5ad file" if self.is_h5ad else "exprssl store"
            raise DataFileError(f"{self.path}: not a readable {kind} ({one_line(e)})") from None
        self.source = str(self.path)

    def _open_h5ad(self, f: h5py.File) -> None:
        from anndata.io import read_elem

        if "X" not in f or "var" not in f or "obs" not in f:
            raise DataFileError(f"{self.path}: not an h5ad file (no X, obs or var)")
        X = f["X"]
        self.shape = tuple(int(v) for v in (X.shape if isinstance(X, h5py.Dataset) else X.attrs["shape"]))
        _RowReader(X, self.path)  # fails now, naming the file, if X cannot be read by rows
        self.chunk_rows = H5AD_CHUNK_ROWS
        self.genes = strip_version([str(g) for g in read_elem(f["var"]).index])
        if len(set(self.genes)) != len(self.genes):
            raise DataFileError(f"{self.path}: duplicated gene ids; collapse them first "
                                "(exprssl.read, then write h5ad) or load the file in memory")

    @contextmanager
    def open(self) -> Iterator[_RowReader]:
        """The open file's rows: ``reader[r0:r1]`` or ``reader[sorted_index]`` -> dense float32."""
        with h5py.File(self.path, "r") as f:
            yield _RowReader(f["X"], self.path)

    @property
    def n_samples(self) -> int:
        return self.shape[0]

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_samples / self.chunk_rows)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows in the given order (h5py reads them sorted)."""
        idx = np.asarray(idx)
        order = np.argsort(idx)
        with self.open() as X:
            block = X[idx[order]]
        out = np.empty_like(block)
        out[order] = block
        return out

    @property
    def obs(self):
        """Sample metadata: an h5ad's ``obs`` table, or a store's sample ids as an empty table."""
        import pandas as pd

        with h5py.File(self.path, "r") as f:
            if self.is_h5ad:
                from anndata.io import read_elem

                obs = read_elem(f["obs"])
                obs.index = obs.index.astype(str)
                return obs
            ids = list(decode_strings(f["samples"][:], str(self.path)))
        return pd.DataFrame(index=pd.Index(ids))

    @property
    def samples(self) -> list[str]:
        return list(self.obs.index)

    def blocks(self, rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, block)`` over all rows in order, whole chunks at a time: bounded memory
        for embedding or scoring a store of any size."""
        rows = max(self.chunk_rows, rows // self.chunk_rows * self.chunk_rows)
        with self.open() as X:
            for r0 in range(0, self.n_samples, rows):
                yield r0, X[r0:r0 + rows]

    def sample_rows(self, n: int, seed: int = 0) -> np.ndarray:
        idx = np.sort(np.random.default_rng(seed).choice(self.n_samples, min(n, self.n_samples), replace=False))
        return idx


class StreamingRows(IterableDataset):
    """Preprocessed batches streamed from a store: chunk order shuffled per epoch, rows shuffled
    within a buffer of ``buffer_chunks`` chunks. Under DDP (and DataLoader workers) each process
    reads a disjoint set of chunks. ``exclude`` rows (the validation set) are skipped."""

    def __init__(self, store: ExpressionStore, preprocessor, batch_size: int, *, buffer_chunks: int = 8,
                 seed: int = 0, exclude: np.ndarray | None = None, rank: int | None = None,
                 world_size: int | None = None):
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
                for c in np.sort(chunks[b0:b0 + self.buffer_chunks]):
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
                    yield torch.from_numpy(buf[order[s:s + self.batch_size]])
                carry = [raw[order[n_full:]]] if n_full < len(buf) else []
        # the last incomplete batch is dropped: BatchNorm needs >1 sample and batches stay equal
