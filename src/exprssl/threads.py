"""Thread pools sized to the work and to the machine's free cores.

Tiny fits (a benchmark cell: tens of labelled samples) gain nothing from several threads, and
on a shared machine their OpenMP threads spin-wait for cores that neighbours hold. Measured on
2 cores with two busy-loop processes alongside (SCARF training steps):

- spin-waiting (OpenMP's default): a 500-gene, 64-wide step took 20 ms with one thread and
  809 ms with two; a 20,000-gene step 263 ms and 2,180 ms;
- passive waiting (``OMP_WAIT_POLICY=PASSIVE``, which ``import exprssl`` sets unless you did):
  14-16 ms either way for the small step; 348 ms with one thread and 221 ms with two at 20,000
  genes, and idle it is no slower (140 ms with two threads vs 173 ms spinning);
- below ~1e9 multiply-adds per step a second thread gains at most 1.25x idle and loses up to
  1.8x under load, so such steps run on one thread;
- end to end (SCARF at 4,096 x 20,000, where a second thread gains 1.3x idle), a fit next to two
  busy processes kept 53% of its idle rate on one thread and 19% on two (the corruption's
  thread pool competes too), so larger steps use only the cores that are free when they start.

Explicit settings always win: ``EXPRSSL_THREADS``, or ``OMP_NUM_THREADS`` set by the user.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

# below this many multiply-adds per training step a second thread costs more than it saves
_SMALL_STEP_FLOPS = 1e9


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def user_threads() -> int | None:
    """A thread count the user fixed in the environment, if any. ``EXPRSSL_THREADS`` is ours: a
    value that is not a positive integer is refused (ignoring it would run with a thread count
    the user did not ask for); ``OMP_NUM_THREADS`` is OpenMP's, used when it is one."""
    value = os.environ.get("EXPRSSL_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            from .errors import ConfigError

            raise ConfigError(
                f"EXPRSSL_THREADS must be a positive integer (threads per fit), got {value!r}; "
                "unset it to size thread pools automatically"
            )
        return int(value)
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _cpu_times(stat: str, cpus: set[int] | None) -> tuple[float, float]:
    """Total and idle (+ iowait) jiffies of ``cpus`` (every CPU when None) from /proc/stat text.
    Only the first eight fields count: guest time is already inside user time."""
    total = idle = 0.0
    for line in stat.splitlines():
        name, *values = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        fields = [float(v) for v in values[:8]]
        total += sum(fields)
        idle += fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return total, idle


def _busy_cores(interval: float = 0.25) -> float | None:
    """How many of the cores this process may run on are busy right now, from two reads of
    /proc/stat ``interval`` seconds apart (Linux). Only those cores count: on a shared node a job
    pinned to 4 of 64 cores has them to itself however busy the other 60 are. The load average
    would still count a run that ended a minute ago."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - macOS / Windows
        cpus = None
    try:
        with open("/proc/stat") as f:
            total0, idle0 = _cpu_times(f.read(), cpus)
        time.sleep(interval)
        with open("/proc/stat") as f:
            total1, idle1 = _cpu_times(f.read(), cpus)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (len(cpus) if cpus else os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def free_cores() -> int:
    """Cores of ours not busy with other work (at least one): sampled from /proc/stat, or the
    1-minute load average where that is missing."""
    cores = cpu_count()
    busy = _busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # pragma: no cover
            return cores
    return max(1, min(cores, int(cores - busy + 0.5)))


def threads_for(step_flops: float) -> int:
    """Threads for a fit whose training step costs ``step_flops`` multiply-adds: one for small
    steps, else the cores free right now; the user's count wins."""
    fixed = user_threads()
    if fixed is not None:
        return fixed
    return 1 if step_flops < _SMALL_STEP_FLOPS else free_cores()


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
