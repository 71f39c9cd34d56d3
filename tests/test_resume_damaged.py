"""Resume reads back more than the result files: the settings and splits it records, the
encoders it pretrained (``models/``) and the features it cached. A damaged cache is recomputed
(said in one line) and the rerun's results equal an uninterrupted run's; damaged settings, which
define the run, are refused in one line that names the file (issue 28)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from bad_inputs import DAMAGED_RUN_CASES, snapshot, tiny_cohort
from typer.testing import CliRunner

from exprssl.cli import app
from exprssl.evaluation.config import BenchmarkConfig
from exprssl.evaluation.runner import run_benchmark
from exprssl.evaluation.schema import Layout

RESULT_FILES = ("results.csv", "predictions.parquet", "tuning.csv", "summary.csv")


def _tiny(data: Path, out: Path) -> BenchmarkConfig:
    """One SSL method (so that models/ holds an encoder) and one baseline, one split and seed."""
    return BenchmarkConfig(
        data=str(data),
        label="label",
        out=str(out),
        methods=["scarf"],
        baselines=["logreg"],
        fractions=[0.5, 1.0],
        splits=1,
        seeds=1,
        epochs=1,
        batch_size=32,
        jobs=1,
        bootstrap=100,
        attributions=False,
        encoder={"hidden_dims": [16], "dropout": 0.1},
        finetune={"epochs": 2, "batch_size": 16, "patience": 1},
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data = tiny_cohort(root)
    run_benchmark(_tiny(data, root / "whole"), progress=False)
    return data, root / "whole"


def _interrupted_and_damaged(finished, name: str, tmp_path: Path) -> Path:
    """The finished run as if killed after pretraining (no result files), then damaged."""
    _, whole = finished
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    for f in RESULT_FILES:
        (out / f).unlink()
    (path,) = out.glob(DAMAGED_RUN_CASES[name].file)
    DAMAGED_RUN_CASES[name].damage(path)
    return out


@pytest.mark.parametrize("name", sorted(DAMAGED_RUN_CASES))
def test_resume_with_damaged_records_and_caches(name, finished, tmp_path, caplog):
    data, whole = finished
    case = DAMAGED_RUN_CASES[name]
    out = _interrupted_and_damaged(finished, name, tmp_path)
    if case.refused:
        before = snapshot(tmp_path)
        args = ["benchmark", "--data", str(data), "--label", "label", "--out", str(out)]
        r = CliRunner().invoke(app, args, catch_exceptions=False)
        errors = [line for line in r.stderr.splitlines() if line.startswith("exprssl: error:")]
        assert r.exit_code == 2 and "Traceback" not in r.output and len(errors) == 1, r.output
        assert case.expect in errors[0] and "new --out directory" in errors[0], errors[0]
        assert snapshot(tmp_path) == before
        return
    with caplog.at_level(logging.WARNING, logger="exprssl"):
        run_benchmark(_tiny(data, out), progress=False)
    said = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(said) == (1 if case.expect else 0) and all(case.expect in s for s in said), said
    for f in ("results.csv", "summary.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / f), pd.read_csv(whole / f))
    assert Layout(out).splits.read_text() == Layout(whole).splits.read_text()


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_row(path: Path) -> None:
    frame = pd.read_csv(path)
    frame.loc[3, "attribution"] = float("nan")
    frame.to_csv(path, index=False)


def _duplicate_row(path: Path) -> None:
    frame = pd.read_csv(path)
    pd.concat([frame, frame.iloc[[5]]]).to_csv(path, index=False)


DAMAGED_ATTRIBUTIONS = {
    "cut_in_half": (_cut, "damaged or incomplete"),
    "garbage": (lambda p: p.write_bytes(b"\x00\xff" * 64), "computed again"),
    "not_finite": (_nan_row, "damaged or incomplete"),
    "duplicated": (_duplicate_row, "damaged or incomplete"),
    "no_fraction_column": (
        lambda p: pd.read_csv(p).drop(columns="fraction").to_csv(p, index=False),
        "no fraction column",
    ),
}


@pytest.fixture(scope="module")
def explained(finished, tmp_path_factory):
    """The tiny run with its attributions."""
    data, _ = finished
    out = tmp_path_factory.mktemp("explained") / "run"
    cfg = _tiny(data, out)
    cfg.attributions = True
    run_benchmark(cfg, progress=False)
    return cfg, out


@pytest.mark.parametrize("name", sorted(DAMAGED_ATTRIBUTIONS))
def test_damaged_attributions_are_computed_again(name, explained, tmp_path, caplog):
    cfg, whole = explained
    damage, expect = DAMAGED_ATTRIBUTIONS[name]
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    damage(Layout(out).attributions)
    cfg = _tiny(cfg.data, out)
    cfg.attributions = True
    with caplog.at_level(logging.WARNING, logger="exprssl"):
        run_benchmark(cfg, progress=False)
    said = [r.getMessage() for r in caplog.records if "attributions.csv" in r.getMessage()]
    assert len(said) == 1 and expect in said[0], said
    order = ["approach", "split", "fraction", "class", "gene"]
    a, b = (pd.read_csv(Layout(d).attributions).sort_values(order) for d in (out, whole))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
