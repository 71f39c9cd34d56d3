"""The plan before the work: counts that equal the real run's cells, a dry run that writes
nothing, a cost model whose structure is right (monotone in rows, genes and classes; nothing for
finished work), and a remaining time whose arithmetic is checked with a fake clock."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import exprssl
from exprssl.cli import app
from exprssl.datasets import synthetic
from exprssl.errors import ConfigError
from exprssl.evaluation.config import BenchmarkConfig
from exprssl.evaluation.estimate import (
    Calibration,
    CellSpec,
    CostModel,
    Line,
    ProbeSpec,
    RunPlan,
    Span,
    probe,
)
from exprssl.evaluation.heads import HeadRecipe
from exprssl.evaluation.pool import Progress, RemainingTime, duration_text
from exprssl.evaluation.schema import Layout, Manifest
from exprssl.io import write_h5ad


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "syn.h5ad"
    write_h5ad(synthetic(150, 60, 3, seed=0, n_informative=30, module_size=10), p)
    return p


def _options(data_file, out, **kw):
    base = dict(
        data=str(data_file),
        label="label",
        out=str(out),
        methods=["scarf"],
        baselines=["logreg", "xgboost"],
        splits=2,
        seeds=1,
        fractions=[0.5, 1.0],
        epochs=1,
        batch_size=32,
        encoder={"hidden_dims": [16], "dropout": 0.0},
        finetune={"epochs": 2, "batch_size": 16, "patience": 1},
        bootstrap=100,
        attributions=False,
        jobs=1,
        progress=False,
        report=False,
    )
    base.update(kw)
    return base


def _files(path):
    return sorted(p.relative_to(path.parent) for p in path.parent.rglob("*"))


def test_dry_run_counts_are_the_real_runs_cells_and_write_nothing(data_file, tmp_path):
    out = tmp_path / "b"
    before = _files(out)
    plan = exprssl.benchmark(**_options(data_file, out), dry_run=True)
    assert isinstance(plan, RunPlan)
    assert _files(out) == before  # no directory, no lock file, nothing
    assert (plan.pretrainings, plan.pretrainings_cached) == (2, 0)  # 2 splits x 1 method
    assert plan.cells == 2 * 1 * 2 * 4  # splits x seeds x fractions x (probe, finetune, 2)
    assert plan.cells_finished == 0 and plan.workers == 1
    assert set(plan.stages) == {"pretraining", "features", "evaluation", "attributions"}
    assert plan.stages["attributions"].expected == 0  # off
    assert plan.total.low <= plan.total.expected <= plan.total.high
    assert plan.total.expected > 0 and len(plan.cell_seconds) == plan.cells
    assert set(plan.learners) == {"logistic", "torch", "xgboost"}

    run = exprssl.benchmark(**_options(data_file, out))
    cells = run.results.drop_duplicates(["split", "method", "head", "fraction", "seed"])
    assert len(cells) == plan.cells
    est = Manifest.read(Layout(out).manifest).estimate
    assert est["cells"] == plan.cells and est["pretrainings"] == 2
    assert est["stages"]["evaluation"]["actual_s"] > 0
    assert est["stages"]["pretraining"]["estimated_s"] > 0
    assert est["learners"]["xgboost"]["actual_s"] > 0  # this run's cells' seconds

    # resumed: finished work costs nothing; one more baseline adds only its cells
    again = exprssl.benchmark(**_options(data_file, out), dry_run=True)
    assert (again.cells, again.cells_finished) == (0, plan.cells)
    assert (again.pretrainings, again.pretrainings_cached) == (0, 2)
    assert again.stages["evaluation"].expected == 0 == again.stages["pretraining"].expected
    grown = exprssl.benchmark(
        **_options(data_file, out, baselines=["logreg", "xgboost", "pca_logreg"]), dry_run=True
    )
    assert (grown.cells, grown.cells_finished) == (2 * 2, plan.cells)
    assert set(grown.per_approach) == {"pca_logreg"}


def test_dry_run_checks_what_a_run_checks(data_file, tmp_path):
    with pytest.raises(ConfigError, match="splits"):
        exprssl.benchmark(**_options(data_file, tmp_path / "o", splits=500), dry_run=True)
    out = tmp_path / "done"
    exprssl.benchmark(**_options(data_file, out, baselines=["logreg"]))
    with pytest.raises(ConfigError, match="other settings"):  # a resumed run's settings
        exprssl.benchmark(**_options(data_file, out, epochs=3), dry_run=True)
    assert not (tmp_path / "o").exists()


def test_cli_dry_run_prints_the_plan_and_exits_0(data_file, tmp_path):
    out = tmp_path / "cli"
    r = CliRunner().invoke(
        app,
        [
            "benchmark",
            "--data",
            str(data_file),
            "--label",
            "label",
            "--out",
            str(out),
            "--methods",
            "scarf",
            "--baselines",
            "logreg",
            "--splits",
            "2",
            "--seeds",
            "1",
            "--fractions",
            "0.5,1",
            "--epochs",
            "1",
            "--no-attributions",
            "--jobs",
            "1",
            "--dry-run",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "plan: 2 pretraining(s)" in r.output
    assert "12 cell(s) (2 split(s) x 1 seed(s) x 2 fraction(s) x 3 approach(es))" in r.output
    assert "estimate: about" in r.output and "evaluation by learner:" in r.output
    assert "on this machine's idle cores" in r.output and "load average now" in r.output
    assert not out.exists()


# --------------------------------------------------------------------------- the cost model
def _calibration(classes=4) -> Calibration:
    return Calibration(
        classes,
        logistic={64: Line(0.01, 1e-4, 64), 1024: Line(0.02, 1e-3, 1024)},
        saga_epoch=Line(0.001, 1e-4, 1024),
        xgb_setup=Line(0.0, 1e-4, 1024),
        xgb_round=Line(0.005, 1e-4, 1024),
        torch_epoch=Line(0.01, 1e-4, 1024),
        hidden=(64, 32),
        ssl_step={"scarf": 0.05},
    )


@pytest.mark.parametrize("family", ["logistic", "elasticnet", "xgboost", "torch"])
def test_cell_cost_grows_with_rows_genes_and_classes(family):
    model = CostModel(_calibration(), HeadRecipe(epochs=20, patience=3))

    def cost(n=200, width=2000, classes=4, grid=4, folds=2):
        return model.cell(CellSpec(family, width, grid, 3), n, n // 5, classes, folds).expected

    assert 0 < cost(n=100) < cost(n=200) < cost(n=2000)
    assert cost(width=1000) < cost(width=2000) < cost(width=20000)
    assert cost(classes=3) < cost(classes=4) < cost(classes=19)
    assert cost(grid=2) < cost(grid=4) and cost(folds=None) < cost(folds=2)
    span = model.cell(CellSpec(family, 2000, 4, 3), 200, 40, 4, 2)
    assert span.low < span.expected < span.high


@pytest.mark.parametrize("family", ["elasticnet", "xgboost"])
def test_screened_learners_cost_their_screened_width(family):
    """XGBoost and the elastic net read at most ``screen_width`` genes per fit: at 7,486
    labelled rows 20,000 genes cost what 2,000 do; a small fit reads (and costs) every gene."""
    model = CostModel(_calibration(19), HeadRecipe())

    def cost(n, width):
        return model.cell(CellSpec(family, width, 4, 3), n, 0, 19, 2).expected

    assert cost(7486, 20000) == pytest.approx(cost(7486, 2000))
    assert cost(100, 20000) > 5 * cost(100, 2000)

    def logistic(width):  # not screened
        return model.cell(CellSpec("logistic", width, 4, 3), 7486, 0, 19, 2).expected

    assert logistic(20000) > 5 * logistic(2000)


def test_cell_cost_counts_fits_and_epochs():
    cal = _calibration()
    model = CostModel(cal, HeadRecipe(epochs=30, patience=4))
    lr = CellSpec("logistic", 1024, 4, 3)
    one_fit = cal.logistic[1024].at(300)
    fold_fit = cal.logistic[1024].at(200)  # 3 folds: 2/3 of the rows
    assert model.cell(lr, 300, 60, 4, 3).expected == pytest.approx(12 * fold_fit + one_fit)
    assert model.cell(lr, 300, 60, 4, None).expected == pytest.approx(one_fit)  # defaults
    head = CellSpec("torch", 1024, 2, 2)
    # without validation rows a head runs every epoch; with them, early stopping is expected:
    # a random init soon, a pretrained encoder after the epochs holding its steps to the best
    assert model.head_epochs(40, 0).expected == 30 and model.head_epochs(40, 10).expected == 15
    assert model.head_epochs(40, 10, pretrained=True).expected == 30  # 2 batches an epoch
    big = [model.head_epochs(n, 2000, pretrained=True).expected for n in (8000, 16000)]
    # 250 and 500 batches an epoch: 800 steps, then patience + 1, the patience of 4 epochs of 32
    # batches (128 steps) held by fewer long epochs, at least 2 (heads.patience_epochs)
    assert big == [4 + 3, 2 + 3]
    assert model.cell(head, 100, 0, 4, None).expected > model.cell(head, 100, 20, 4, None).expected
    cfg = BenchmarkConfig(epochs=10, batch_size=64)
    short, long = model.pretraining("scarf", 1000, cfg), model.pretraining("scarf", 4000, cfg)
    assert long.expected > short.expected > 10 * 14 * 0.05  # epochs x steps x step


def test_probe_times_each_kind_of_work_and_leaves_random_state_alone():
    np.random.seed(3)
    random.seed(3)
    torch.manual_seed(3)
    states = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    spec = ProbeSpec(
        classes=3,
        rows=40,
        widths=(("logistic", 20), ("elasticnet", 20), ("xgboost", 20), ("torch", 20)),
        hidden=(8,),
        head_batch=8,
        ssl=(("scarf", json.dumps({"hidden_dims": [8], "dropout": 0.0})),),
        ssl_width=20,
        ssl_batch=16,
        raw_width=20,
    )
    cal = probe(spec)
    assert np.array_equal(np.random.get_state()[1], states[0])
    assert random.getstate() == states[1] and torch.equal(torch.get_rng_state(), states[2])
    assert set(cal.logistic) == {32} and cal.logistic[32].width == 32  # sizes rounded up
    for line in (cal.logistic[32], cal.saga_epoch, cal.xgb_round, cal.torch_epoch):
        assert line.b > 0 and line.at(100) > line.at(10) > 0
    assert cal.xgb_setup.width == 32 and cal.ssl_step["scarf"] > 0
    assert cal.element_s > 0 and cal.flops_per_s > 0
    assert probe(spec).logistic == cal.logistic  # timed once per process


def test_the_probe_times_cpu_not_the_machines_load():
    """A probe charges the CPU its work uses, not the time it waited for a core: a busy machine
    (another process holding the cores) does not inflate the estimate; multi-threaded work
    (``cpu=False``) is timed on the wall clock."""
    import time

    from exprssl.evaluation import estimate

    assert estimate._once(lambda: time.sleep(0.3)) < 0.05
    assert estimate._once(lambda: time.sleep(0.3), cpu=False) >= 0.3
    busy = estimate._once(lambda: sum(i * i for i in range(300_000)))
    assert busy > 0


def test_span_text_and_line_through():
    assert Span(2400, 1200, 4800).text() == "about 40 min (20 min-80 min)"
    assert [duration_text(s) for s in (12, 600, 9000, 200_000)] == [
        "12 s",
        "10 min",
        "2.5 h",
        "2.3 days",
    ]
    line = Line.through(100, 1.0, 200, 1.5, 64)
    assert (line.a, line.b) == pytest.approx((0.5, 0.005))
    noisy = Line.through(100, 2.0, 200, 1.0, 64)  # the larger size timed faster: noise
    assert noisy.b == pytest.approx(0.1 * 1.0 / 200) and noisy.at(1000) > noisy.at(200)


# --------------------------------------------------------------------------- remaining time
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_remaining_time_weights_items_by_cost_and_rescales_by_observed():
    clock = FakeClock()
    costs = {"cheap": 1.0, "dear": 9.0, "other": 10.0}
    eta = RemainingTime(
        20.0, workers=2, cost=costs.get, observed=lambda k: 2 * costs[k], prior=0.0, clock=clock
    )
    assert eta.seconds() == 10.0  # the model alone: 20 worker-seconds on 2 workers
    clock.now = 4.0
    assert eta.seconds() == 6.0  # counts down between finishes
    eta.finished(["cheap"])  # took twice its modelled time
    assert eta.ratio == 2.0 and eta.seconds() == pytest.approx(2.0 * 19.0 / 2)
    eta.finished(["dear"])
    assert eta.seconds() == pytest.approx(2.0 * 10.0 / 2)  # weighted by cost, not by count
    clock.now = 20.0
    assert eta.seconds() == 0.0  # never negative
    eta.finished(["other"])
    assert eta.left == 0 and eta.seconds() == 0.0


def test_remaining_time_prior_and_wall_clock():
    clock = FakeClock()
    # a prior of 50% of the modelled total: one item that took 3x barely moves the ratio
    eta = RemainingTime(10.0, cost=lambda k: 1.0, observed=lambda k: 3.0, prior=0.5, clock=clock)
    eta.finished(["a"])
    assert eta.ratio == pytest.approx((3.0 + 5.0) / (1.0 + 5.0))
    # uniform items without observed seconds: the wall clock times the workers
    eta = RemainingTime(8.0, workers=2, n_items=4, prior=0.0, clock=clock)
    clock.now += 3.0
    eta.finished([None])  # one item of 2 worker-seconds took 3 s of 2 workers
    assert eta.ratio == pytest.approx(6.0 / 2.0) and eta.seconds() == pytest.approx(3 * 6 / 2)


def test_progress_tick_feeds_the_remaining_time():
    clock = FakeClock()
    eta = RemainingTime(4.0, n_items=4, observed=lambda item: 1.0, prior=0.0, clock=clock)
    with Progress(False) as bar:
        tick = bar("cells", 4, eta=eta)
        tick(2, ["x", "y"])
        tick(1)  # no items: one item of average cost
        task = bar.bar.tasks[0]
    assert task.completed == 3 and eta.left == pytest.approx(1.0)
    assert eta.ratio == pytest.approx(1.0)


def test_xgboost_search_rounds_follow_the_halving_schedule():
    """The cost model counts the rounds halving trains: the default grid's two groups of two
    points all train 50 rounds, one per group goes on (150 expected: 2 x 100 more)."""
    from exprssl.evaluation.boosting import searched_rounds
    from exprssl.evaluation.tuning import GRIDS

    grid = GRIDS["xgboost"]
    assert searched_rounds(grid, 150) == 4 * 50 + 2 * 100
    assert searched_rounds(grid, 40) == 4 * 40  # every point stops before the first rung
    assert searched_rounds(grid, 1000) == 4 * 50 + 2 * 250  # at most 300 rounds
    assert searched_rounds([{}] * 4, 150) == 4 * 50 + 2 * 50 + 1 * 50
