"""Thread pools sized to the work and to the machine's free cores.

Tiny fits (a benchmark cell: tens of labelled samples) gain nothing from several threads, and
on a shared machine their OpenMP/BLAS threads spin-wait for cores that neighbours hold: the same
XGBoost fit took 0.8 s with one thread and 119 s with two at load 4-6 on 2 cores. Large fits
(pretraining on thousands of profiles) use every core that is free. Explicit settings always
win: ``EXPRSSL_THREADS``, or ``OMP_NUM_THREADS`` set by the user, fixes the count.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# below this many multiply-adds per training step a second thread costs more than it saves
_SMALL_STEP_FLOPS = 2e7


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def user_threads() -> int | None:
    """A thread count the user fixed in the environment, if any."""
    for var in ("EXPRSSL_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def free_cores() -> int:
    """Cores not busy with other work, from the 1-minute load average (at least one)."""
    cores = cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return cores
    return max(1, min(cores, int(round(cores - load + 0.5))))


def threads_for(step_flops: float) -> int:
    """Threads for a fit whose training step costs ``step_flops`` multiply-adds: one for tiny
    steps, else the free cores; the user's fixed count wins."""
    fixed = user_threads()
    if fixed is not None:
        return fixed
    if step_flops < _SMALL_STEP_FLOPS:
        return 1
    return free_cores()


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` threads in torch and in every BLAS/OpenMP pool (threadpoolctl),
    restoring the previous sizes afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        with threadpool_limits(limits=max(1, n)):
            yield
    finally:
        torch.set_num_threads(before)


def single_threaded_worker() -> None:
    """Initialiser of benchmark worker processes: one thread each, set before any pool starts."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)
