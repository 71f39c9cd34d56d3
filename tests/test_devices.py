"""The benchmark's cells on an accelerator: one place decides the device, and every learner that
can use it (the stacked torch heads, XGBoost) gets it. No GPU is needed: the resolution is told a
GPU is there, and the moves to it are intercepted (recorded, then run on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import exprssl.devices as devices
from exprssl.datasets import synthetic
from exprssl.errors import ConfigError
from exprssl.evaluation.config import BenchmarkConfig, cell_devices, worker_count
from exprssl.io import write_h5ad


@pytest.fixture
def two_gpus(monkeypatch):
    """This machine, as the resolution sees it: two CUDA devices."""
    monkeypatch.setattr(devices, "gpu_kind", lambda accelerator: "cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def moves(monkeypatch):
    """Record every move of a tensor or network to a CUDA device and every XGBoost booster's
    device, and keep them all on the CPU."""
    import xgboost as xgb

    seen = {"tensor": [], "module": [], "xgboost": []}
    tensor_to, module_to, booster_init = torch.Tensor.to, torch.nn.Module.to, xgb.Booster.__init__

    def cuda(args, kwargs) -> str | None:
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            return str(torch.device(target))
        return None

    def on_tensor(self, *args, **kwargs):
        device = cuda(args, kwargs)
        if device is None:
            return tensor_to(self, *args, **kwargs)
        seen["tensor"].append(device)
        return self

    def on_module(self, *args, **kwargs):
        device = cuda(args, kwargs)
        if device is None:
            return module_to(self, *args, **kwargs)
        seen["module"].append(device)
        return self

    def on_booster(self, params=None, cache=None, model_file=None):
        seen["xgboost"].append(params["device"])
        booster_init(self, {**params, "device": "cpu"}, cache, model_file)

    monkeypatch.setattr(torch.Tensor, "to", on_tensor)
    monkeypatch.setattr(torch.nn.Module, "to", on_module)
    monkeypatch.setattr(xgb.Booster, "__init__", on_booster)
    return seen


def _config(tmp_path, **kw) -> BenchmarkConfig:
    a = synthetic(60, 40, 3, n_informative=20, module_size=5, effect_size=1.5, seed=0)
    a.obs["label"] = a.obs["label"].astype(str)
    write_h5ad(a, tmp_path / "cohort.h5ad")
    return BenchmarkConfig(
        data=str(tmp_path / "cohort.h5ad"),
        label="label",
        out=str(tmp_path / "bench"),
        methods=[],
        baselines=["mlp", "xgboost", "logreg"],
        fractions=[1.0],
        splits=1,
        seeds=1,
        encoder={"hidden_dims": [8], "dropout": 0.1},
        finetune={"epochs": 3, "patience": 1},
        attributions=False,
        bootstrap=100,
        **kw,
    )


def test_one_place_resolves_the_cells_devices_and_a_worker_per_gpu(tmp_path, two_gpus):
    cfg = _config(tmp_path)
    assert cell_devices(cfg) == ["cuda:0", "cuda:1"]
    assert worker_count(cfg, cell_devices(cfg)) == 2  # not one per core on the same GPUs
    for asked, expected in [(1, ["cuda:0"]), ([1], ["cuda:1"]), (-1, ["cuda:0", "cuda:1"])]:
        cfg.devices = asked
        assert cell_devices(cfg) == expected
    cfg.devices = [2]
    with pytest.raises(ConfigError, match="2 CUDA device"):
        cell_devices(cfg)
    cfg.jobs = 3
    assert worker_count(cfg, ["cuda:0"]) == 3  # the user's number wins


def test_the_cpu_needs_no_gpu_and_keeps_a_worker_per_core(tmp_path, monkeypatch):
    from exprssl.evaluation import config

    monkeypatch.setattr(config, "cpu_count", lambda: 5)
    cfg = _config(tmp_path, accelerator="cpu", devices=[3])  # devices only name GPUs
    assert cell_devices(cfg) == ["cpu"] and worker_count(cfg, ["cpu"]) == 5


def test_the_device_choice_reaches_every_learner(tmp_path, two_gpus, moves):
    """A run told it has two GPUs: the MLP's stacked networks and their data, and every XGBoost
    booster (inner-CV folds and the final model), are put on a GPU; logistic regression scores
    on the CPU as before."""
    from exprssl.evaluation.protocol import run_benchmark

    cfg = _config(tmp_path, jobs=1)
    run_benchmark(cfg, progress=False, dry_run=True)  # the cost model's probe: CPU, measured once
    for seen in moves.values():
        seen.clear()
    run = run_benchmark(cfg, progress=False)  # inline: the spies see every cell
    assert set(run.results["method"]) == {"mlp", "xgboost", "logreg"}
    assert moves["module"] and set(moves["module"]) == {"cuda:0"}  # one job: the first GPU
    assert len(moves["tensor"]) >= 3 and set(moves["tensor"]) == {"cuda:0"}  # X, test X, y
    assert len(moves["xgboost"]) >= 2 and set(moves["xgboost"]) == {"cuda:0"}
    assert np.isfinite(run.results["value"]).all()
