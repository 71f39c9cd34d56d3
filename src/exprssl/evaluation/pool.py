"""Running tasks: a pool of single-threaded worker processes (or inline, or a Dask cluster's
workers: ``exprssl.evaluation.cluster``), and progress bars with a remaining time weighted by
each item's modelled cost."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.progress import ProgressColumn
from rich.text import Text

from ..signals import die_with_parent
from ..threads import limit_threads
from .cluster import active

log = logging.getLogger("exprssl")


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
    """``fn`` for a pool worker: one thread, and killed with this process (``die_with_parent``:
    a worker that outlives a SIGKILLed parent keeps the CPU busy for nothing)."""
    parent = os.getpid()

    def run(task):
        import torch

        die_with_parent(parent)
        torch.set_num_threads(1)
        return fn(task)

    run.__name__ = getattr(fn, "__name__", "task")
    return run


def duration_text(seconds: float) -> str:
    """A duration as people say it: ``45 s``, ``12 min``, ``2.5 h``, ``1.5 days``."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


class RemainingTime:
    """The wall time left in a stage whose items differ in cost, fed as items finish.

    A rate-based ETA assumes every item costs the same; benchmark cells do not (an XGBoost cell
    at 100% of the labels costs thousands of logistic-regression cells at 1%), so such an ETA is
    biased by the order they finish in. Here the items left are weighted by their modelled cost
    (``cost(item)``, worker-seconds; uniform when not given) and rescaled by how the finished
    ones compared: observed / modelled seconds (``observed(item)``; without it, the wall time
    elapsed times the workers), shrunk towards 1 by a ``prior`` share of the modelled total so
    that the first tiny cells do not swing it. Between finishes it counts down with the clock.
    """

    def __init__(
        self,
        modelled: float,
        workers: int = 1,
        *,
        n_items: int | None = None,
        cost: Callable[[Any], float] | None = None,
        observed: Callable[[Any], float] | None = None,
        prior: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.left = max(0.0, float(modelled))
        self.workers = max(1, int(workers))
        unit = self.left / n_items if n_items else 0.0
        self.cost = cost or (lambda item: unit)
        self.observed = observed
        self.prior = prior * self.left
        self.modelled_done = self.observed_done = 0.0
        self.clock = clock
        self.start = self.last = clock()
        self.at_last = self.left / self.workers

    @property
    def ratio(self) -> float:
        """Observed over modelled seconds of the finished items (1 before any)."""
        den = self.modelled_done + self.prior
        return (self.observed_done + self.prior) / den if den > 0 else 1.0

    def finished(self, items: Iterable[Any]) -> None:
        """Items that just finished (their costs leave the remainder)."""
        now = self.clock()
        for item in items:
            c = float(self.cost(item))
            self.left = max(0.0, self.left - c)
            self.modelled_done += c
            if self.observed is not None:
                self.observed_done += float(self.observed(item))
        if self.observed is None:
            self.observed_done = (now - self.start) * self.workers
        self.last = now
        self.at_last = self.ratio * self.left / self.workers

    def seconds(self) -> float:
        """The wall time left now: the estimate at the last finish, counted down since."""
        return max(0.0, self.at_last - (self.clock() - self.last))


class _RemainingColumn(ProgressColumn):
    """``~12 min left`` from the task's ``RemainingTime`` (blank without one, or when done)."""

    def render(self, task) -> Text:
        eta = task.fields.get("eta")
        if eta is None or task.finished:
            return Text("")
        left = eta.seconds()
        if left <= 0:  # past the estimate and no item has finished since: say so, not "0 s"
            return Text("longer than estimated", style="progress.remaining")
        return Text(f"~{duration_text(left)} left", style="progress.remaining")


class Progress:
    """Rich progress bars, one per stage (or none), with a remaining time where the stage has
    a ``RemainingTime``."""

    def __init__(self, enabled: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _RemainingColumn(),
            disable=not enabled,
            transient=False,
        )

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def note(self, lines: Iterable[str]) -> None:
        """Lines said before the work (the plan): above the bars, or to the log without them."""
        for line in lines:
            if self.enabled:
                self.bar.console.print(line, highlight=False, markup=False, soft_wrap=True)
            else:
                log.info("%s", line)

    def __call__(
        self, description: str, total: int, done: int = 0, eta: RemainingTime | None = None
    ) -> Callable[..., None]:
        """A bar; the returned tick takes how many items finished and, for the remaining time,
        the items themselves (``eta``'s ``cost`` and ``observed`` read them)."""
        task = self.bar.add_task(description, total=max(total, 1), completed=done, eta=eta)

        def tick(n: int, items: Iterable[Any] = ()) -> None:
            if eta is not None:
                eta.finished(list(items) or [None] * n)
            self.bar.advance(task, n)

        return tick
