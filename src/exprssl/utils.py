"""Small shared helpers: atomic file writes, seeding, the available-memory probe, deprecated
names."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or exception mid-write leaves the user's existing file untouched, no partial file,
    and no directory created for it.
    """
    path = Path(path)
    created = make_parents(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    done = False
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp_path, path)
        done = True
    finally:
        if tmp_path.exists():
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
