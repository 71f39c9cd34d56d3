"""The `exprssl` CLI on the bundled real dataset: commands work, bad input is one line + exit 2."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from exprssl.cli import app
from exprssl.methods import available

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("datasets", "info", "pretrain", "embed", "benchmark", "demo"):
        assert cmd in r.output


def test_datasets_lists_all_leukemia():
    r = run("datasets")
    assert r.exit_code == 0, r.output
    assert "all_leukemia" in r.output
    assert "128" in r.output and "12625" in r.output


def test_info_bundled_shape_and_labels():
    r = run("info", "all_leukemia")
    assert r.exit_code == 0, r.output
    assert "128 samples x 12625 genes" in r.output
    assert "log" in r.output.lower()
    # molecular subtype counts from the source
    assert "BCR/ABL 37" in r.output and "NEG 74" in r.output


@pytest.fixture(scope="module")
def small_leukemia(tmp_path_factory):
    """The real dataset cut to 400 probe sets, so every method pretrains in a second or two."""
    from exprssl.datasets import load

    a = load("all_leukemia")
    keep = np.argsort(-a.X.var(0))[:400]
    path = tmp_path_factory.mktemp("data") / "all400.h5ad"
    a[:, np.sort(keep)].copy().write_h5ad(path)
    return path


@pytest.mark.parametrize("method", available())
def test_pretrain_and_embed_every_method(tmp_path, small_leukemia, method):
    out = tmp_path / f"model_{method}"
    r = run("pretrain", "--method", method, "--data", small_leukemia, "--out", out, "--epochs", 2,
            "--batch-size", 32, "--no-progress")
    assert r.exit_code == 0, r.output
    for f in ("config.json", "preprocessor.json", "weights.pt", "genes.txt", "history.csv"):
        assert (out / f).is_file(), f
    emb = tmp_path / "emb.h5ad"
    r = run("embed", "--model", out, "--data", small_leukemia, "--out", emb)
    assert r.exit_code == 0, r.output
    res = ad.read_h5ad(emb)
    Z = res.obsm[f"X_{method}"]
    assert Z.shape == (128, 256)
    assert np.isfinite(Z).all() and Z.std() > 0
    assert "mol.biol" in res.obs.columns and list(res.obs_names[:3]) == ["01005", "01010", "03002"]


def test_pretrain_config_file_and_flag_override(tmp_path, small_leukemia):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"method: vime\ndata: {small_leukemia}\nout: {tmp_path / 'm'}\nepochs: 3\n"
                   "batch_size: 16\nalpha: 1.5\npreprocessing:\n  top_k_variance: 100\n")
    r = run("pretrain", "--config", cfg, "--epochs", 1, "--no-progress")
    assert r.exit_code == 0, r.output
    import json

    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    assert conf["method"] == "vime" and conf["method_config"]["alpha"] == 1.5
    assert conf["train_config"]["epochs"] == 1 and conf["train_config"]["batch_size"] == 16
    assert conf["n_features"] == 100
    assert len(pd.read_csv(tmp_path / "m" / "history.csv")) == 1


def _assert_one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    text = r.output
    assert "Traceback" not in text
    for n in needles:
        assert n in text, (n, text)


def test_unknown_method_is_clear(tmp_path):
    r = run("pretrain", "--method", "simclrx", "--data", "all_leukemia", "--out", tmp_path / "m")
    _assert_one_line_error(r, "simclrx", "scarf")
    assert not (tmp_path / "m").exists()


def test_missing_data_file(tmp_path):
    r = run("info", tmp_path / "nope.csv")
    _assert_one_line_error(r, "nope.csv")


def test_missing_model_dir(tmp_path):
    r = run("embed", "--model", tmp_path / "nomodel", "--data", "all_leukemia", "--out", tmp_path / "e.h5ad")
    _assert_one_line_error(r, "nomodel")


def test_embed_data_without_model_genes(tmp_path, small_leukemia):
    out = tmp_path / "m"
    assert run("pretrain", "--method", "scarf", "--data", small_leukemia, "--out", out, "--epochs", 1,
               "--no-progress").exit_code == 0
    other = ad.AnnData(np.random.default_rng(0).normal(5, 1, (10, 50)).astype(np.float32))
    other.var_names = [f"GENE{i}" for i in range(50)]
    other.obs_names = [f"s{i}" for i in range(10)]
    path = tmp_path / "other.h5ad"
    other.write_h5ad(path)
    r = run("embed", "--model", out, "--data", path, "--out", tmp_path / "e.h5ad")
    _assert_one_line_error(r, "0.0%")
    assert not (tmp_path / "e.h5ad").exists()


def test_bad_config_key(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("method: scarf\ndata: all_leukemia\nout: x\ntemprature: 0.5\n")
    r = run("pretrain", "--config", cfg)
    _assert_one_line_error(r, "temprature")
