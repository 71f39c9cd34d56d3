"""How exprssl's processes end: the command line's handling of SIGTERM and SIGXFSZ, and the
set-up every worker process runs so that none outlives the process that started it.

A scheduler's time limit or ``timeout`` sends SIGTERM, whose default action ends the process at
once: no ``finally`` block runs, so joblib's worker processes, loky's resource tracker, and their
memory-mapped folders and semaphores in ``/dev/shm`` stay behind. ``handle_signals`` turns
SIGTERM into ``Terminated`` (a ``KeyboardInterrupt``, as Ctrl-C raises), so the clean-up that
Ctrl-C runs (joblib ends its workers and removes its files) runs for SIGTERM too. A worker asks
the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``, Linux), which covers the
parent's SIGKILL and its crashes, where no clean-up of its own can run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM: ends it as Ctrl-C does (exit status 128 + 15)."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"terminated by signal {signum}")


def handle_signals() -> None:
    """For the command line's process: SIGTERM raises ``Terminated``; SIGXFSZ is ignored, so a
    write beyond the file-size limit (``ulimit -f``) fails with EFBIG, which is reported in one
    line, instead of killing the process (Python ignores it already; a host program may not)."""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    with contextlib.suppress(ValueError):  # not the main thread (an embedding application)
        signal.signal(signal.SIGTERM, _raise_terminated)


def die_with_parent(parent: int) -> None:
    """In a worker process: be killed when ``parent`` (the process that started the pool) dies,
    and end now if it already has. Linux only; elsewhere loky's own checks remain."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
