"""`layer=` / `--layer`: the values read from an AnnData layer (scanpy keeps raw counts in
layers["counts"] and log values in X)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from typer.testing import CliRunner

from exprssl import Preprocessor, SSLModel
from exprssl.cli import app
from exprssl.errors import ConfigError, DataFileError
from exprssl.io import read_file
from exprssl.sources import ExpressionSource

GENES = [f"G{i}" for i in range(30)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """An h5ad as scanpy leaves it: X = log1p(CP10k), layers["counts"] = the raw counts."""
    rng = np.random.default_rng(0)
    counts = rng.negative_binomial(5, 0.05, (24, 30)).astype(np.float32)
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    a = ad.AnnData(logged, layers={"counts": counts})
    a.var_names, a.obs_names = GENES, [f"s{i}" for i in range(24)]
    a.obs["type"] = ["x", "y"] * 12
    path = tmp_path_factory.mktemp("layer") / "scanpy.h5ad"
    a.write_h5ad(path)
    return path, a, counts, logged


def test_the_counts_layer_gets_the_counts_preprocessing(cohort):
    path, adata, counts, logged = cohort
    from_x = Preprocessor().fit(ExpressionSource.resolve(path))
    for given in (path, adata):  # an h5ad path and the AnnData in memory
        prep = Preprocessor().fit(ExpressionSource.resolve(given, layer="counts"))
        assert prep.input_scale_ == "counts" and prep.library_size_ and prep.log_
    assert from_x.input_scale_ == "log" and not from_x.log_  # X: log values, not logged again
    np.testing.assert_array_equal(read_file(path, layer="counts").X, counts)
    np.testing.assert_array_equal(ExpressionSource.load(adata, layer="counts").data.X, counts)
    np.testing.assert_array_equal(adata.X, logged)  # the caller's AnnData left as it was


def test_fit_and_transform_read_the_layer(cohort):
    path, adata, counts, _ = cohort
    opts = dict(epochs=1, batch_size=8, method_params={"hidden_dims": [4]}, progress=False, seed=1)
    model = SSLModel("scarf", **opts).fit(path, layer="counts")
    as_x = ad.AnnData(counts.copy())
    as_x.var_names = GENES
    assert model.preprocessor_.input_scale_ == "counts"
    Z = model.transform(adata, layer="counts", key="X_counts")
    np.testing.assert_allclose(Z, model.transform(as_x), rtol=1e-6)
    assert adata.obsm["X_counts"].shape == (24, model.embedding_dim_)  # stored in the caller's
    del adata.obsm["X_counts"]


def test_an_unknown_layer_is_one_line_naming_the_file_and_its_layers(cohort, tmp_path):
    path, adata, _, _ = cohort
    with pytest.raises(DataFileError) as e:
        ExpressionSource.resolve(path, layer="raw")
    assert str(e.value) == f"{path}: no layer 'raw' (its layers: counts)"
    with pytest.raises(ConfigError) as e:
        SSLModel("scarf").fit(adata, layer="raw")
    assert str(e.value) == "AnnData: no layer 'raw' (its layers: counts)"
    table = tmp_path / "expr.csv"
    adata.to_df().to_csv(table)
    with pytest.raises(ConfigError, match=r"expr.csv: layer 'counts' names an AnnData layer, and"):
        ExpressionSource.load(table, layer="counts")
    with pytest.raises(ConfigError, match="streaming reads an h5ad's X only"):
        ExpressionSource.resolve(path, stream=True, layer="counts")


def test_cli_info_and_benchmark_take_the_layer(cohort, tmp_path):
    from exprssl.evaluation.cohort import load_cohort
    from exprssl.evaluation.config import BenchmarkConfig

    path, _, counts, _ = cohort
    runner = CliRunner()
    result = runner.invoke(app, ["info", str(path), "--layer", "counts", "--json"])
    assert result.exit_code == 0, result.output
    assert "raw counts" in result.output
    result = runner.invoke(app, ["info", str(path), "--layer", "spliced"])
    assert result.exit_code == 2
    flat = result.output.replace("\n", "")
    assert f"{path.name}: no layer 'spliced' (its layers: counts)" in flat
    cfg = BenchmarkConfig.from_dict(
        {"data": str(path), "label": "type", "out": str(tmp_path / "b"), "layer": "counts"}
    )
    np.testing.assert_array_equal(load_cohort(cfg).adata.X, counts)
    for command in ("pretrain", "embed", "benchmark"):
        assert "--layer" in runner.invoke(app, [command, "--help"]).output
