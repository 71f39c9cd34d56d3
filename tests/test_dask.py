"""The benchmark on a Dask cluster (two loopback workers): the same bytes as a local run, resumed
without recomputing, and one clear line for a wrong address, a missing Dask or unseen files."""

from __future__ import annotations

import importlib
import json
import re
import sys
import time

import numpy as np
import pandas as pd
import pytest

import exprssl
from exprssl.datasets import synthetic
from exprssl.errors import ConfigError
from exprssl.evaluation.protocol import BenchmarkConfig, run_benchmark
from exprssl.evaluation.schema import Layout
from exprssl.io import write_h5ad

try:  # the tests without a cluster run without Dask too
    import distributed
except ImportError:
    distributed = None

TASKS = ("exprssl-pretrain_one", "exprssl-evaluate_group")


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        for w in c.scheduler_info()["workers"]:  # workers import torch & co. during the local run
            for module in ("exprssl.evaluation.runner", "exprssl.model"):
                warm = c.submit(importlib.import_module, module, workers=[w], pure=False)
                distributed.fire_and_forget(warm)
        yield c


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    a = synthetic(160, 100, 3, seed=0, n_informative=40, module_size=10)
    a.obs["label"] = a.obs["label"].astype(object)
    a.obs.loc[a.obs_names[:20], "label"] = np.nan  # profiles without the label: pool only
    p = tmp_path_factory.mktemp("d") / "syn.h5ad"
    write_h5ad(a, p)
    return p


def _cfg(data_file, out, **kw):
    """test_protocol's fast set-up, smaller: one SSL method, a linear and a torch baseline."""
    base = dict(
        data=str(data_file),
        label="label",
        out=str(out),
        methods=["scarf"],
        baselines=["logreg", "mlp"],
        seeds=1,
        splits=2,
        fractions=[0.5, 1.0],
        epochs=2,
        batch_size=32,
        encoder={"hidden_dims": [32, 32], "dropout": 0.1},
        finetune={"epochs": 5, "batch_size": 16, "patience": 3},
        bootstrap=100,
        attributions=False,
        jobs=1,
    )
    return BenchmarkConfig(**{**base, **kw})


def _ran(stream) -> list[tuple[str, str]]:
    """(task kind, worker) of each exprssl task the cluster ran."""
    return [
        (t["key"].rsplit("-", 2)[0], t["worker"])
        for t in stream.data
        if str(t["key"]).startswith(TASKS)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_file, client):
    """The same benchmark locally (inline: test_protocol shows inline equals the loky pool) and
    on the cluster, with the exprssl tasks the cluster ran."""
    root = tmp_path_factory.mktemp("runs")
    local = run_benchmark(_cfg(data_file, root / "local"), progress=False)
    with distributed.get_task_stream(client) as stream, pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # a relative out, and workers whose working directory is not ours
        remote = exprssl.benchmark(
            config=_cfg(data_file, "dask"), scheduler=client, progress=False, report=False
        )
    return local, remote, _ran(stream)


def test_results_on_the_cluster_are_byte_identical_to_the_local_run(runs, client):
    local, remote, ran = runs
    assert Layout(remote.out).results.read_bytes() == Layout(local.out).results.read_bytes()
    order = ["split", "seed", "fraction", "approach", "test_index"]
    preds = [
        pd.read_parquet(Layout(r.out).predictions).sort_values(order, ignore_index=True)
        for r in (local, remote)
    ]
    pd.testing.assert_frame_equal(preds[0], preds[1])
    assert len(preds[0]) > 0
    tuning = [pd.read_csv(Layout(r.out).tuning).drop(columns="seconds") for r in (local, remote)]
    pd.testing.assert_frame_equal(
        *(t.sort_values(["split", "fraction", "approach"], ignore_index=True) for t in tuning)
    )
    # every model and cell ran on the workers (both of them), none in this process
    kinds = [k for k, _ in ran]
    assert kinds.count("exprssl-pretrain_one") == 2  # one SCARF model per split
    assert kinds.count("exprssl-evaluate_group") == 4  # 2 splits x 1 seed x 2 fractions
    assert {w for _, w in ran} == set(client.scheduler_info()["workers"])
    # the address is the recorded setting (a Client is not a config value)
    assert remote.manifest.config["scheduler"] == client.scheduler.address
    assert remote.out == local.out.parent / "dask"
    assert "scheduler" not in json.loads(Layout(remote.out).settings.read_text())


def test_a_rerun_on_the_cluster_computes_nothing(runs, client, data_file, tmp_path):
    """Resume is the parent's, as locally: a finished run (here the local one, reached through a
    scheduler file) sends no task and rewrites the same results."""
    local, _, _ = runs
    before = Layout(local.out).results.read_bytes()
    sched = tmp_path / "scheduler.json"
    sched.write_text(json.dumps({"address": client.scheduler.address}))
    with distributed.get_task_stream(client) as stream:
        again = run_benchmark(_cfg(data_file, local.out, scheduler=str(sched)), progress=False)
    assert _ran(stream) == []
    assert Layout(local.out).results.read_bytes() == before
    assert len(again.results) == len(local.results)


def _cli(*args):
    from typer.testing import CliRunner

    from exprssl.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_a_wrong_address_is_one_line_exit_2_quickly(data_file, tmp_path):
    dask = pytest.importorskip("dask")

    out = tmp_path / "b"
    t0 = time.perf_counter()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        r = _cli(
            "benchmark", "--data", data_file, "--label", "label", "--out", out,
            "--scheduler", "tcp://127.0.0.1:1",
        )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:1" in r.output
    assert len(r.output.strip().splitlines()) <= 3  # one line, wrapped by the terminal width
    assert time.perf_counter() - t0 < 15
    assert not out.exists()  # before any work


@pytest.mark.parametrize("value", ["", "tcp://host:8786 x", 8786])
def test_a_malformed_scheduler_is_refused_by_the_validator(data_file, tmp_path, value):
    with pytest.raises(
        ConfigError, match="benchmark: scheduler must be a Dask scheduler's address"
    ):
        _cfg(data_file, tmp_path / "b", scheduler=value).validate()


def test_not_a_client_nor_a_scheduler_file(data_file, tmp_path):
    with pytest.raises(ConfigError, match="scheduler must be an address .* got object"):
        exprssl.benchmark(config=_cfg(data_file, tmp_path / "b"), scheduler=object())
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ConfigError, match="s.json is not a Dask scheduler file"):
        run_benchmark(_cfg(data_file, tmp_path / "b", scheduler=str(tmp_path / "s.json")))
    assert not (tmp_path / "b").exists()


def test_a_cluster_object_is_not_a_client(client, data_file, tmp_path):
    with pytest.raises(
        ConfigError, match=r"dask.distributed.Client \(Client\(cluster\).*LocalCluster"
    ):
        exprssl.benchmark(config=_cfg(data_file, tmp_path / "b"), scheduler=client.cluster)


def test_without_dask_the_hint_says_what_to_install(monkeypatch, data_file, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'exprssl\[dask\]'"):
        run_benchmark(_cfg(data_file, tmp_path / "b", scheduler="tcp://127.0.0.1:8786"))
    assert not (tmp_path / "b").exists()


def test_a_worker_that_cannot_see_the_output_names_it(client, tmp_path):
    """The error is raised on the worker and arrives as the same one-line ConfigError."""
    from exprssl.evaluation.cluster import _on_worker, connect
    from exprssl.evaluation.pool import run_tasks

    gone = tmp_path / "gone"
    with connect(client, str(gone)), pytest.raises(ConfigError, match=re.escape(f"see {gone}")):
        list(run_tasks(abs, [-1, -2], 2))
    Layout(tmp_path).settings.write_text("{}")
    with connect(client, str(tmp_path)):
        assert sorted(run_tasks(abs, [-1, -2], 2)) == [1, 2]
    with pytest.raises(ConfigError, match="runs exprssl .* the parent 0.0.1"):
        _on_worker(1, abs, str(tmp_path), "0.0.1")


def test_a_long_lived_worker_never_reads_a_replaced_feature_file(tmp_path):
    """Cached per process (a worker serves many cells), but keyed by the file's version: a
    directory replaced by another run under the same path is read afresh."""
    from exprssl.evaluation.cells import _array

    path = tmp_path / "X.npy"
    np.save(path, np.zeros((3, 2), np.float32))
    assert _array(str(path)) is _array(str(path))  # mapped once
    path.unlink()
    np.save(path, np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(_array(str(path)), np.ones((4, 2)))
