"""SSLModel: seeded determinism, save/load, gene alignment by name, and that pretraining learns."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from exprssl import SSLModel
from exprssl.errors import ConfigError, GeneOverlapError, ModelNotFoundError
from exprssl.methods import available
from exprssl.training import effective_rank, embedding_std


def module_data(n=600, n_genes=300, n_classes=4, n_modules=12, module_size=15, noise=1.5, seed=0):
    """Classes live in co-expressed gene modules under strong independent per-gene noise.

    Each gene alone is a weak class marker (per-gene SNR < 1) but whole modules are strong ones,
    so an encoder that learns the modules (what corruption-based SSL rewards: redundant structure
    survives masking) beats random features, especially with few labels.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    rng.shuffle(y)
    centers = rng.normal(0, 1.0, (n_classes, n_modules))
    activity = centers[y] + rng.normal(0, 0.5, (n, n_modules))  # module activity per sample
    X = rng.normal(0, noise, (n, n_genes))
    for m in range(n_modules):
        genes = np.arange(m * module_size, (m + 1) * module_size)
        X[:, genes] += activity[:, [m]]
    X = (X + 8).astype(np.float32)  # log-scale-like values
    a = ad.AnnData(X)
    a.obs_names = [f"s{i}" for i in range(n)]
    a.var_names = [f"G{i}" for i in range(n_genes)]
    a.obs["label"] = [f"c{k}" for k in y]
    return a


FAST = dict(epochs=3, batch_size=64, hidden_dims=(64, 64), progress=False)


@pytest.fixture(scope="module")
def data():
    return module_data()


def test_seeded_training_is_deterministic(data):
    z1 = SSLModel("scarf", seed=3, **FAST).fit(data).transform(data)
    z2 = SSLModel("scarf", seed=3, **FAST).fit(data).transform(data)
    z3 = SSLModel("scarf", seed=4, **FAST).fit(data).transform(data)
    np.testing.assert_array_equal(z1, z2)
    assert not np.allclose(z1, z3)


@pytest.mark.parametrize("method", ["scarf", "byol"])
def test_save_load_roundtrip_identical_embeddings(tmp_path, data, method):
    m = SSLModel(method, **FAST).fit(data)
    z = m.transform(data)
    m.save(tmp_path / "model")
    m2 = SSLModel.load(tmp_path / "model")
    np.testing.assert_array_equal(z, m2.transform(data))
    assert m2.genes == m.genes and m2.method_name == method
    assert len(m2.history) == len(m.history) > 0
    # saving again over an existing model replaces it whole, leaving no temp dirs behind
    m2.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_bf16_mixed_precision_on_cpu(data):
    """--precision bf16-mixed (autocast; ~1.7x faster steps on AVX512-BF16 CPUs) keeps fp32
    weights and fp32 embeddings close to the fp32-trained model's."""
    ref = SSLModel("scarf", seed=1, **FAST).fit(data)
    m = SSLModel("scarf", seed=1, precision="bf16-mixed", **FAST).fit(data)
    assert all(p.dtype == torch.float32 for p in m.method.parameters())
    z, z_ref = m.transform(data), ref.transform(data)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert np.corrcoef(z.ravel(), z_ref.ravel())[0, 1] > 0.9
    assert not np.array_equal(z, z_ref)  # bf16 really ran


def test_transform_aligns_genes_by_name(data):
    m = SSLModel("vime", **FAST).fit(data)
    z = m.transform(data)
    perm = np.random.default_rng(0).permutation(data.n_vars)
    shuffled = data[:, perm].copy()
    np.testing.assert_allclose(m.transform(shuffled), z, rtol=1e-5, atol=1e-5)
    m.transform(shuffled, key="X_vime")
    assert shuffled.obsm["X_vime"].shape == (data.n_obs, 64)


def test_fit_and_transform_take_a_path_or_dataset_name(tmp_path, data):
    from exprssl.io import write_h5ad

    path = tmp_path / "d.h5ad"
    write_h5ad(data, path)
    m = SSLModel("scarf", seed=0, **FAST).fit(str(path))
    np.testing.assert_array_equal(m.transform(path), m.transform(data))
    assert m.genes == list(data.var_names)
    with pytest.raises(Exception, match="neither an existing file nor a bundled dataset"):
        m.transform("no_such_data")
    assert SSLModel("vime", **FAST).fit("all_leukemia").transform("all_leukemia").shape == (128, 64)


def test_transform_without_model_genes_fails(data):
    m = SSLModel("mae", **FAST).fit(data)
    other = data.copy()
    other.var_names = [f"X{i}" for i in range(other.n_vars)]
    with pytest.raises(GeneOverlapError):
        m.transform(other)


def test_bad_options_fail_before_training():
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        SSLModel("nope")
    with pytest.raises(ConfigError, match="temprature"):
        SSLModel("scarf", temprature=0.1)
    with pytest.raises(ConfigError, match="batch_size"):
        SSLModel("scarf", batch_size=1)
    with pytest.raises(ModelNotFoundError):
        SSLModel.load("/nonexistent/model")
    with pytest.raises(ConfigError, match="not fitted"):
        SSLModel("scarf").transform(module_data(n=8))


def test_collapse_monitors():
    torch.manual_seed(0)
    spread = torch.randn(500, 16)
    one_point = torch.randn(1, 16).expand(500, 16) + 1e-6 * torch.randn(500, 16)
    one_line = torch.randn(500, 1) @ torch.randn(1, 16)
    assert effective_rank(spread) > 14
    assert effective_rank(one_point) < 1.01
    assert effective_rank(one_line) < 1.01
    assert embedding_std(spread) == pytest.approx(1 / 4, rel=0.1)
    assert embedding_std(one_point) < 1e-5


def test_history_records_epochs(data):
    m = SSLModel("barlow", epochs=4, batch_size=64, hidden_dims=(32,), patience=0, progress=False).fit(data)
    h = m.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert h[["train_loss", "val_loss", "emb_std", "eff_rank"]].notna().all().all()
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


def _probe_accuracy(Z, y, train_idx, test_idx):
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(Z[train_idx], y[train_idx])
    return clf.score(Z[test_idx], y[test_idx])


@pytest.mark.parametrize("method", available())
def test_pretraining_beats_random_encoder(method):
    """A short pretraining learns structure a random-init encoder of the same shape lacks."""
    data = module_data(seed=1)
    y = data.obs["label"].to_numpy()
    rng = np.random.default_rng(0)
    # few labels: 5 per class; the rest is the test set
    train_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)])
    test_idx = np.setdiff1d(np.arange(len(y)), train_idx)
    opts = dict(epochs=30, batch_size=128, hidden_dims=(128, 128), seed=0, progress=False, patience=0)
    trained = SSLModel(method, **opts).fit(data)
    random_init = SSLModel(method, **dict(opts, epochs=1, lr=1e-12)).fit(data)
    acc_trained = _probe_accuracy(trained.transform(data), y, train_idx, test_idx)
    acc_random = _probe_accuracy(random_init.transform(data), y, train_idx, test_idx)
    assert acc_trained >= acc_random + 0.10, (method, acc_trained, acc_random)
