"""Small shared helpers: atomic file writes (and what a write that runs out of room says),
seeding, the available-memory probe, deprecated names."""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import os
import random
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# the failures of a write that ran out of room, as the one line says them
NO_ROOM = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large",
    errno.EDQUOT: "disk quota exceeded",
}
_STRERRORS = {code: os.strerror(code).lower() for code in NO_ROOM}
# how HDF5 ("errno = 27") and Rust libraries ("os error 27") quote the C library's error
_QUOTED_ERRNO = re.compile(r"(?:errno\s*=?\s*|os error\s*)(\d+)", re.IGNORECASE)
_NEAR_FULL = 1 << 20  # free bytes below which a failed write is put down to a full disk


def no_room_cause(exc: BaseException, written: Path | None = None) -> str | None:
    """Why a write failed when it ran out of room (``NO_ROOM``'s words), else None.

    Libraries report the C library's error in their own words (HDF5's ``errno = 27``,
    safetensors' ``os error 27``, numpy's ``35200 requested and 16352 written``), so the
    exception chain and its text are read first, then ``written`` (the file or directory being
    written) is compared with the file-size limit and its file system's free space.
    """
    code = _quoted_errno(exc)
    if code is None and written is not None:
        code = _probed_errno(Path(written))
    if code is None:
        return None
    limit = _size_limit()
    if code == errno.EFBIG and limit is not None:
        return f"{NO_ROOM[code]}: the file-size limit (ulimit -f) is {plural(limit, 'byte')}"
    return NO_ROOM[code]


def _quoted_errno(exc: BaseException | None) -> int | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            return exc.errno
        text = str(exc).lower()
        for m in _QUOTED_ERRNO.finditer(text):
            if int(m.group(1)) in NO_ROOM:
                return int(m.group(1))
        for code, words in _STRERRORS.items():
            if words in text:
                return code
        exc = exc.__cause__ or exc.__context__
    return None


def _size_limit() -> int | None:
    """The soft file-size limit in bytes (``ulimit -f``), None when unlimited or unknown."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return None if limit == resource.RLIM_INFINITY else int(limit)
    except (ImportError, OSError, ValueError):
        return None


def _probed_errno(written: Path) -> int | None:
    """EFBIG when a file under ``written`` reached the file-size limit, ENOSPC when its file
    system has (almost) no room left; None when neither explains a failed write."""
    limit = _size_limit()
    with contextlib.suppress(OSError):
        files = [written] if written.is_file() else []
        if written.is_dir():
            files = [p for p in written.rglob("*") if p.is_file()]
        if limit is not None and any(p.stat().st_size >= limit for p in files):
            return errno.EFBIG
    place = written
    while not place.exists() and place != place.parent:
        place = place.parent
    with contextlib.suppress(OSError, AttributeError):
        st = os.statvfs(place)
        if st.f_bavail * st.f_frsize < _NEAR_FULL:
            return errno.ENOSPC
    return None


@contextlib.contextmanager
def room_errors(
    path: str | os.PathLike, written: str | os.PathLike | None = None
) -> Iterator[None]:
    """Turn a write that runs out of room (full disk, quota, ``ulimit -f``) into one
    ``OutputSpaceError`` naming ``path`` and the cause. ``written`` is the temporary file or
    directory the block writes (what the probe measures); the caller removes it. What HDF5's
    objects report while they are torn down after such a failure is not printed."""
    from .errors import OutputSpaceError

    # Cython's ``__dealloc__`` reports through both hooks: held, and said only if not ours
    hook, excepthook, held = sys.unraisablehook, sys.excepthook, []
    sys.unraisablehook = held.append
    sys.excepthook = lambda *exc: held.append(exc)
    failure = None
    try:
        try:
            yield
        except OutputSpaceError as e:  # a nested write (a file inside a model directory)
            failure = _no_room(path, e.cause)
        except Exception as e:
            cause = no_room_cause(e, Path(written) if written is not None else None)
            if cause is None:
                raise
            failure = _no_room(path, cause)
        if failure is not None:
            raise failure  # outside the except clause: the library's frames are freed first
    finally:
        if failure is not None:
            gc.collect()
        sys.unraisablehook, sys.excepthook = hook, excepthook
        for args in held if failure is None else ():
            excepthook(*args) if isinstance(args, tuple) else hook(args)


def hdf5_left_open() -> bool:
    """Whether HDF5 datasets, groups or files are still open: after a write that ran out of
    room, HDF5 keeps the objects whose flush failed, and its own clean-up at interpreter exit
    then crashes the process (a segmentation fault after the message); the command line exits
    without that clean-up instead."""
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return False
    kinds = h5py.h5f.OBJ_DATASET | h5py.h5f.OBJ_GROUP | h5py.h5f.OBJ_FILE
    with contextlib.suppress(Exception):
        return bool(h5py.h5f.get_obj_ids(types=kinds))
    return False


def _no_room(path: str | os.PathLike, cause: str):
    from .errors import OutputSpaceError

    error = OutputSpaceError(
        f"{path}: not written ({cause}); any earlier {Path(path).name} there is unchanged: "
        "make room, then run the same command again"
    )
    error.cause = cause
    return error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or exception mid-write leaves the user's existing file untouched, no partial file,
    and no directory created for it; a write that runs out of room raises one
    ``OutputSpaceError`` (``room_errors``).
    """
    path = Path(path)
    created = make_parents(path)
    tmp_path = None
    done = False
    try:
        with room_errors(path):  # a file system out of inodes fails here
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
        tmp_path = Path(tmp)
        with room_errors(path, tmp_path):
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
            os.replace(tmp_path, path)
        done = True
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
        if not done:
            remove_empty(created)


def make_parents(path: Path) -> list[Path]:
    """Create ``path``'s missing parent directories; returns them, deepest first."""
    missing = [p for p in path.absolute().parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(dirs: list[Path]) -> None:
    """Remove directories we created, deepest first, if they are still empty."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_save(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` through a temp file (written to an open file: ``np.save`` given a name
    without ``.npy`` would add it)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def atomic_savez(path: str | os.PathLike, **arrays) -> None:
    """``np.savez_compressed`` through a temp file, so a reader never sees a partial archive."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def available_memory() -> int | None:
    """Bytes a new allocation can get: Linux's MemAvailable counts reclaimable page cache, which
    free pages alone do not (a busy file server has little 'free' memory). None where unknown."""
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


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def plural(n: float, word: str, words: str | None = None) -> str:
    """``'1 sample'``, ``'3 samples'``, ``'2.4 samples'``: a count and its noun for messages and
    reports (``words`` for an irregular plural); whole numbers print without a decimal."""
    shown = f"{int(n):,}" if float(n).is_integer() else f"{n:.1f}"
    return f"{shown} {word if n == 1 else (words or word + 's')}"


REMOVED_IN = "0.5"  # the release that drops the names deprecated in this one


def deprecated_alias(func: Callable, old: str, new: str) -> Callable:
    """``func`` under its previous public name ``old``, for one more release: each call emits a
    ``DeprecationWarning`` naming ``new``, pointing at the caller's line (Python's default filters
    then show it once per calling line: in scripts, notebooks and test runs, not to CLI users)."""
    message = f"{old} is deprecated and will be removed in exprssl {REMOVED_IN}; use {new}"

    @functools.wraps(func)
    def alias(*args, **kwargs):
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return func(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rsplit(".", 1)[-1]
    alias.__doc__ = (
        f"Deprecated name of ``{new}`` (removed in {REMOVED_IN}).\n\n{func.__doc__ or ''}"
    )
    return alias
