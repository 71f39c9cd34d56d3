"""``exprssl.benchmark``: run (or resume) the label-efficiency benchmark and write its report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def benchmark(
    data: str | None = None,
    label: str | None = None,
    out: str | None = None,
    *,
    config=None,
    progress: bool = True,
    report: bool = True,
    dry_run: bool = False,
    **options: Any,
):
    """Does SSL pretraining beat supervised learning on the raw genes of this cohort, and at how
    many labels? Options are those of ``exprssl.evaluation.config.BenchmarkConfig`` (or pass
    one as ``config``); returns the run (``.summary`` holds the answer, one row per approach and
    label fraction) after writing report.md / report.html into ``out``.

    >>> run = exprssl.benchmark("all_leukemia", "mol.biol", "bench", min_class_size=5,
    ...                         methods=["scarf"])
    >>> best = run.summary[run.summary.best_ssl]
    >>> best[["fraction", "approach", "diff", "diff_lo", "diff_hi", "verdict"]]

    On a Dask cluster (``pip install 'exprssl[dask]'``; the output directory on a filesystem
    every worker sees), pretraining and cells run on its workers, the parent records them:

    >>> run = exprssl.benchmark("tcga.h5ad", "cancer_type", "/shared/bench",
    ...                         scheduler=Client(SLURMCluster(...)))

    Parameters
    ----------
    data
        The cohort: an expression file or a bundled dataset's name.
    label
        The ``obs`` column to predict.
    out
        The output directory (created; an existing run there is resumed).
    config
        A ``BenchmarkConfig`` to start from; ``data``, ``label``, ``out`` and ``options``
        override its fields.
    progress
        Show a progress bar.
    report
        Write report.md / report.html into ``out``.
    dry_run
        Check every option and the data as a run does, then return the plan (how many
        pretrainings and cells, and the estimated time on this machine) without training or
        writing anything.
    **options
        Any ``BenchmarkConfig`` field. ``scheduler`` may also be a ``dask.distributed.Client``
        (its address is what the manifest records).

    Returns
    -------
    exprssl.evaluation.runner.BenchmarkRun
        The run: ``.summary`` (``summary.csv``), ``.results`` (every finished cell), ``.out``
        and ``.manifest`` (an ``exprssl.evaluation.schema.Manifest``: ``.dataset``, ``.pool``,
        ``.full_labels``, ``.setting(name)``, ...). With ``dry_run``: an
        ``exprssl.evaluation.estimate.RunPlan`` (``.describe()`` prints it, ``.total`` is the
        estimated wall time with its range, ``.stages`` per stage).

    Raises
    ------
    exprssl.errors.ConfigError
        An unknown or invalid option.
    """
    from .evaluation.config import BenchmarkConfig
    from .evaluation.runner import run_benchmark

    given = {k: v for k, v in {"data": data, "label": label, "out": out}.items() if v is not None}
    base = asdict(config) if config is not None else {}
    client = options.get("scheduler")
    if isinstance(client, str | None):
        client = None
    else:  # a Client: a connection, not a setting
        from .evaluation.cluster import client_address

        options["scheduler"] = client_address(client)
    config = BenchmarkConfig.from_dict(
        {**base, **given, **options}
    )  # unknown options: one clear error
    run = run_benchmark(config, progress=progress, client=client, dry_run=dry_run)
    if dry_run:
        return run
    if report:
        from .report import write_report

        write_report(run.out, main_metric=run.manifest.setting("main_metric"))
    return run
