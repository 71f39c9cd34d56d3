"""The benchmark's tasks on a Dask cluster (the ``scheduler`` option): the same tasks as the local
pool (pretraining per split and model, one evaluation cell group, one split's attributions),
submitted with ``Client.map`` and collected with ``as_completed``. The parent still records each
outcome as it arrives and owns every result file, so resume is unchanged.

- Workers read the ``cache/`` and ``models/`` files the parent wrote (features memory-mapped and
  cached per worker process, as in a local worker), so the output directory must be on a
  filesystem every worker mounts at the same path: each task checks that first (one stat) and
  names the path if not, and the paths it is given are absolute.
- Each task runs single-threaded (torch, BLAS and OpenMP pools), as in the local pool: the numbers
  then do not depend on the worker's core count (a thread count changes the order of float
  reductions), and a worker's cores are used by running one task per core (``dask worker
  --nthreads 1 --nworkers <cores>``), which for fits of this size is faster than threads inside
  one fit (see ``exprssl.threads``).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError

HINT = "pip install 'exprssl[dask]'"
_ACTIVE: ContextVar[Cluster | None] = ContextVar("exprssl_cluster", default=None)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"scheduler: running on a Dask cluster needs Dask: {HINT}") from None
    return distributed


def client_address(client: Any) -> str:
    """The address a ``dask.distributed.Client`` is connected to (what the manifest records: a
    client is not a config value)."""
    try:
        from distributed import Client
    except ImportError:  # then it cannot be a Client
        Client = ()
    if not isinstance(client, Client):
        raise ConfigError(
            "scheduler must be an address (tcp://host:8786) or a dask.distributed.Client "
            f"(Client(cluster) for a cluster object), got {type(client).__name__}"
        )
    return client.scheduler.address


def active() -> Cluster | None:
    """The cluster ``run_tasks`` sends work to now (None: the local pool)."""
    return _ACTIVE.get()


class Cluster:
    """Where the tasks run: a connected client made active by ``with`` (inside it, ``run_tasks``
    sends every task to the cluster), or none (the local pool). A client this object opened is
    closed on exit; a given one is left open."""

    def __init__(self, client: Any = None, out: str = "", owned: bool = False):
        self.client, self.out, self.owned = client, out, owned
        self._token = None

    def __enter__(self) -> Cluster:
        self._token = _ACTIVE.set(self if self.client is not None else None)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._token)
        if self.owned:
            self.client.close()

    def map_unordered(self, fn: Callable, tasks: list) -> Iterator:
        """``fn`` over ``tasks`` on the workers, results as they finish; what is still queued
        is cancelled if the parent stops early (an error, Ctrl-C)."""
        distributed = _distributed()
        token = uuid.uuid4().hex[:8]
        name = getattr(fn, "__name__", "task")
        futures = self.client.map(
            _on_worker,
            tasks,
            fn=fn,
            out=self.out,
            version=__version__,
            key=[f"exprssl-{name}-{i}-{token}" for i in range(len(tasks))],
        )
        try:
            for future in distributed.as_completed(futures):
                yield future.result()
        finally:  # finished ones are released with the list
            self.client.cancel([f for f in futures if not f.done()])


def connect(scheduler: Any, out: str) -> Cluster:
    """Connect to ``scheduler`` (an address, a scheduler file's path, or a Client) before any
    work, so a wrong address is one line (``distributed.comm.timeouts.connect`` bounds the
    wait); None: the local pool. ``out``: the output directory the workers must see (made
    absolute for them: ``Cluster.out``)."""
    if scheduler is None:
        return Cluster(out=out)
    out = str(Path(out).absolute())  # workers elsewhere resolve no path relative to our cwd
    if not isinstance(scheduler, str):
        client_address(scheduler)  # a Client, or one line saying what is accepted
        return Cluster(scheduler, out, owned=False)
    address = _address(scheduler)
    distributed = _distributed()
    try:
        client = distributed.Client(address, set_as_default=False)
    except (OSError, ValueError) as e:  # timed out, refused, unknown scheme or host
        raise ConfigError(
            f"scheduler: cannot reach a Dask scheduler at {address} ({e}); start one "
            "(`dask scheduler`) or fix the address"
        ) from None
    return Cluster(client, out, owned=True)


def _address(scheduler: str) -> str:
    """The address itself, or the one a scheduler file (``dask scheduler --scheduler-file``)
    holds."""
    if not scheduler.endswith(".json"):
        return scheduler
    try:
        address = json.loads(Path(scheduler).read_text())["address"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"scheduler: {scheduler} is not a Dask scheduler file (JSON with its address, "
            "written by `dask scheduler --scheduler-file`)"
        ) from None
    return str(address)


def _on_worker(task: Any, fn: Callable, out: str, version: str) -> Any:
    """Run one task on a worker: after checking it sees the output directory and runs this
    exprssl release, single-threaded for good (not restored: a worker running two tasks at once
    must not see the other's limit lifted)."""
    import torch
    from threadpoolctl import threadpool_limits

    from .. import __version__ as here
    from .schema import Layout

    settings = Layout(Path(out)).settings
    if not settings.exists():
        raise ConfigError(
            f"Dask worker on {socket.gethostname()} cannot see {settings}: the "
            "benchmark's output directory must be on a filesystem every worker mounts at the "
            "same path"
        )
    if here != version:
        raise ConfigError(
            f"Dask worker on {socket.gethostname()} runs exprssl {here}, the parent {version}: "
            "install the same release on every worker"
        )
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what the local pool's workers get
    torch.set_num_threads(1)
    threadpool_limits(1)
    return fn(task)
