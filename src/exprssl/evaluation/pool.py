"""Running tasks: a pool of single-threaded worker processes (or inline, or a Dask cluster's
workers: ``exprssl.evaluation.cluster``), and progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..threads import limit_threads
from .cluster import active


def run_tasks(fn: Callable, tasks: list, jobs: int) -> Iterator:
    """``fn`` over ``tasks``, results as they finish: on the active Dask cluster's workers (see
    ``cluster.connect``; ``jobs`` is then the cluster's business), in ``jobs`` single-threaded
    worker processes, or inline on one thread (tiny fits gain nothing from more and suffer on a
    busy machine)."""
    cluster = active()
    if cluster is not None:
        yield from cluster.map_unordered(fn, tasks)
        return
    if jobs <= 1 or len(tasks) <= 1:
        with limit_threads(1):
            for t in tasks:
                yield fn(t)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        yield from Parallel(n_jobs=min(jobs, len(tasks)), return_as="generator_unordered")(
            delayed(_single_threaded(fn))(t) for t in tasks
        )


def _single_threaded(fn):
    def run(task):
        import torch

        torch.set_num_threads(1)
        return fn(task)

    run.__name__ = getattr(fn, "__name__", "task")
    return run


class Progress:
    """Rich progress bars, one per stage (or none)."""

    def __init__(self, enabled: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not enabled,
            transient=False,
        )

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, description: str, total: int, done: int = 0) -> Callable[[int], None]:
        task = self.bar.add_task(description, total=max(total, 1), completed=done)
        return lambda n: self.bar.advance(task, n)
