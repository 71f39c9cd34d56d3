"""Where results go: exprssl never replaces or deletes a path it did not write.

The rules every command follows, checked before any work starts:

- an output path that exists and is not an exprssl artefact of the same kind is refused;
- replacing an exprssl artefact needs ``overwrite`` (a benchmark directory is resumed instead);
- an output may never be, or contain, one of the command's inputs;
- the place it will be written must be writable.

An artefact is recognised by what exprssl writes into it: a model directory by ``config.json``
(with ``format_version`` and ``method``) and its weights (``model_layout.ModelLayout``), a
benchmark directory by
``settings.json``, a training log directory (``log_dir``: the CSV logger's ``metrics.csv``,
checkpoints) by ``exprssl-log.json``, an embedding ``.h5ad`` by ``uns/exprssl/model``, a store by
``uns/exprssl_store`` (or, written by 0.2, its format attribute), an attributions table
(``.csv``) by its header. Replacing a model directory replaces exprssl's files only, so one that
holds anything else (a user's ``notes.txt``) is refused even with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputPathError
from .model_layout import MODEL_FILES, ModelLayout

KINDS = {
    "model": "model directory",
    "benchmark": "benchmark directory",
    "embedding": "embedding .h5ad",
    "store": "expression store",
    "attributions": "attributions table",
    "log": "training log directory",
}
ATTRIBUTIONS_HEADER = "gene,class,approach,split,fraction,attribution,rank"  # attributions.COLUMNS
# also an exprssl attributions table: the header of 0.3 development builds (no fraction column)
ATTRIBUTIONS_HEADERS = (ATTRIBUTIONS_HEADER, "gene,class,approach,split,attribution,rank")
_DIR_KINDS = ("model", "benchmark", "log")
_REUSED_KINDS = (
    "benchmark",
    "log",
)  # resumed or appended to, never replaced: no --overwrite needed
LOG_MARKER = "exprssl-log.json"
# what marks a benchmark directory (``evaluation.schema.Layout.settings`` is this file)
BENCHMARK_SETTINGS = "settings.json"


def artifact_kind(path: str | os.PathLike) -> str | None:
    """Which exprssl artefact ``path`` is (``model``, ``benchmark``, ``embedding``, ``store``),
    or None."""
    path = Path(path)
    if path.is_dir():
        try:
            if (path / LOG_MARKER).is_file():
                return "log"
            if ModelLayout(path).is_model():
                return "model"
            settings_file = path / BENCHMARK_SETTINGS
            if settings_file.is_file():
                settings = json.loads(settings_file.read_text())
                if isinstance(settings, dict) and "exprssl_version" in settings:
                    return "benchmark"
        except (OSError, ValueError):
            return None
        return None
    if path.is_file() and path.suffix == ".csv":
        try:
            with open(path, encoding="utf-8") as fh:
                return "attributions" if fh.readline().strip() in ATTRIBUTIONS_HEADERS else None
        except (OSError, UnicodeDecodeError):
            return None
    if path.is_file():
        try:
            import h5py

            from .store import is_store

            if is_store(path):
                return "store"
            with h5py.File(path, "r") as f:
                if "uns/exprssl/model" in f:
                    return "embedding"
        except (OSError, ValueError, ImportError):
            return None
    return None


def _same_or_inside(inner: Path, outer: Path) -> bool:
    """``inner`` is ``outer`` itself or lies below it (symlinks resolved)."""
    try:
        inner, outer = inner.resolve(), outer.resolve()
    except (OSError, RuntimeError):
        return False
    return inner == outer or outer in inner.parents


def _check_resolvable(path: Path) -> None:
    """Refuse, naming the link, an output path through a symbolic link that loops or points to
    nothing: writing through it would fail half-way or create a file somewhere unexpected."""
    try:
        path.resolve(strict=False)
    except (RuntimeError, OSError):
        raise OutputPathError(
            f"{path}: a symbolic link loop (a link that points, directly or not, to itself); "
            "choose another output path"
        ) from None
    if path.is_symlink() and not path.exists():
        raise OutputPathError(
            f"{path}: a symbolic link to a missing target ({os.readlink(path)}); exprssl does "
            "not write through it: choose another output path"
        )


def _foreign_files(path: Path, kind: str) -> list[str]:
    """Entries of an exprssl artefact directory that exprssl did not write (model directories)."""
    if kind != "model" or not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name not in MODEL_FILES)


def check_writable(path: str | os.PathLike) -> None:
    """``path`` (a file or directory still to be written) can be created: its nearest existing
    ancestor is a directory we may write into. Probed with a real temporary file, because a
    read-only mount passes ``os.access`` for root."""
    path = Path(path).absolute()
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(
            f"{path}: cannot be created: {parent} (part of the path) is a file, not a directory"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".exprssl-probe-", dir=parent)
    except OSError as e:
        reason = (
            "is read-only"
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
            else f"refuses files: {e.strerror}"
        )
        raise OutputPathError(f"{path}: cannot write there ({parent} {reason})") from None
    os.close(fd)
    os.unlink(probe)


def check_output(
    path: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Refuse an output path that would replace or lose something exprssl did not write.

    ``kind`` is one of ``KINDS``. A missing path or an empty directory (for directory kinds) is
    always fine; an artefact of the same kind needs ``overwrite``, except a benchmark directory,
    which is resumed (the benchmark checks its settings itself). Returns the path.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    path = Path(path)
    what = KINDS[kind]
    _check_resolvable(path)
    from .io import data_file

    for src in inputs:
        if src is None or data_file(src) is None:
            # a bundled dataset's name (even with a directory of that name here), not a path
            continue
        if _same_or_inside(Path(src), path):
            relation = "is" if Path(src).resolve() == path.resolve() else "contains"
            raise OutputPathError(
                f"{path}: the output {relation} an input ({src}); choose another output path"
            )
        if Path(src).is_dir() and _same_or_inside(
            path, Path(src)
        ):  # e.g. an embedding inside the model
            raise OutputPathError(
                f"{path}: the output lies inside an input directory ({src}), which exprssl "
                "never writes into; choose another output path"
            )
    if path.exists() or path.is_symlink():
        found = artifact_kind(path)
        if kind in _DIR_KINDS and path.is_dir() and not found and not any(path.iterdir()):
            pass  # an empty directory: nothing to lose
        elif found != kind:
            holds = (
                f"an exprssl {KINDS[found]}"
                if found
                else ("a directory" if path.is_dir() else "a file")
            )
            raise OutputPathError(
                f"{path}: exists and is {holds}, not an exprssl {what}; exprssl never "
                "replaces what it did not write: choose a new output path"
            )
        elif kind not in _REUSED_KINDS and not overwrite:
            raise OutputPathError(
                f"{path}: an exprssl {what} already exists there; pass --overwrite "
                "(overwrite=True) to replace it"
            )
        elif foreign := _foreign_files(path, kind):
            raise OutputPathError(
                f"{path}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                f"which exprssl did not write; replacing the {what} would lose "
                f"{'it' if len(foreign) == 1 else 'them'}: move "
                f"{'it' if len(foreign) == 1 else 'them'} out or choose a new output path"
            )
    check_writable(path)
    return path


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while it is written: a second writer is refused at once
    instead of racing (two saves into one model directory used to fail half-way or leave
    ``.NAME.old-<pid>`` behind)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder unlinks the file when done: a lock taken on that old file is no lock
            if os.fstat(fd).st_ino != os.stat(lock).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise OutputPathError(
                f"{path}: another exprssl process is writing it; wait for it to "
                "finish or choose another output path"
            ) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def prepare_log_dir(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """A training log directory (``log_dir``) checked by the output rules, created, and marked as
    exprssl's: Lightning's CSV logger writes ``metrics.csv`` and ``hparams.yaml`` there and the
    checkpoint callback ``checkpoints/``, names a user's own directory may already hold."""
    path = check_output(path, "log", inputs=inputs)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / LOG_MARKER
    if not marker.exists():
        marker.write_text(
            json.dumps(
                {"written_by": "exprssl", "holds": ["metrics.csv", "hparams.yaml", "checkpoints/"]}
            )
            + "\n"
        )
    return path


__all__ = [
    "KINDS",
    "OutputPathError",
    "artifact_kind",
    "check_output",
    "check_writable",
    "output_lock",
    "prepare_log_dir",
]
