"""A benchmark killed between writing a cell's predictions and its results resumes to exactly
the files, summary and verdicts of an uninterrupted run (no prediction counted twice)."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

import exprssl.evaluation.results as results_module
import exprssl.evaluation.runner as runner
from exprssl.datasets import synthetic
from exprssl.evaluation.config import BenchmarkConfig
from exprssl.evaluation.runner import run_benchmark
from exprssl.evaluation.schema import CELL_KEY, Layout
from exprssl.io import write_h5ad


class Killed(Exception):
    """Stands for the process being killed."""


def _cfg(data, out):
    return BenchmarkConfig(
        data=str(data),
        label="label",
        out=str(out),
        methods=["scarf"],
        baselines=["logreg", "random_encoder"],
        fractions=[0.3, 1.0],
        splits=1,
        seeds=1,
        epochs=1,
        batch_size=32,
        bootstrap=200,
        jobs=1,
        encoder={"hidden_dims": [16], "dropout": 0.1},
        finetune={"epochs": 2, "batch_size": 16, "patience": 1},
    )


def test_kill_between_predictions_and_results_resumes_identically(tmp_path, monkeypatch):
    data = tmp_path / "syn.h5ad"
    write_h5ad(synthetic(90, 40, 3, seed=0, n_informative=20, module_size=5), data)
    whole = run_benchmark(_cfg(data, tmp_path / "whole"), progress=False)

    # every group flushes; the second flush dies after predictions.parquet, before the rest
    monkeypatch.setattr(
        runner, "evaluate_stage", functools.partial(runner.evaluate_stage, flush_every=-1.0)
    )
    writes = {"n": 0}
    real_write = results_module.atomic_write_text

    def dying_write(path, text):
        writes["n"] += 1
        if writes["n"] == 3:  # flush 1 wrote tuning and results; flush 2 wrote predictions
            raise Killed
        real_write(path, text)

    monkeypatch.setattr(results_module, "atomic_write_text", dying_write)
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run_benchmark(_cfg(data, out), progress=False)
    on_disk = pd.read_parquet(Layout(out).predictions).groupby(CELL_KEY).ngroups
    assert (
        on_disk
        > pd.read_csv(Layout(out).results)
        .groupby(["split", "method", "head", "fraction", "seed"])
        .ngroups
    )  # a cell only half written
    monkeypatch.setattr(results_module, "atomic_write_text", real_write)

    resumed = run_benchmark(_cfg(data, out), progress=False)
    for name in ("results.csv", "summary.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(out / name), pd.read_csv(tmp_path / "whole" / name)
        )
    assert list(resumed.summary["verdict"].fillna("")) == list(whole.summary["verdict"].fillna(""))
    preds = pd.read_parquet(Layout(out).predictions)
    assert not preds.duplicated(CELL_KEY + ["test_index"]).any()
    assert len(preds) == len(pd.read_parquet(Layout(tmp_path / "whole").predictions))
