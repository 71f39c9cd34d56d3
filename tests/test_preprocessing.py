"""Preprocessing: fit on train only, transform never changes the fit, JSON round-trip."""

from __future__ import annotations

import copy

import anndata as ad
import numpy as np
import pytest

from exprssl.datasets import synthetic
from exprssl.errors import ConfigError, GeneOverlapError, InvalidValuesError, NegativeCountsError
from exprssl.preprocessing import Preprocessor


@pytest.fixture(scope="module")
def counts():
    return synthetic(200, 300, 3, seed=0)


def _state(p: Preprocessor) -> dict:
    return copy.deepcopy(p.to_dict())


def test_auto_decisions_from_scale(counts):
    p = Preprocessor().fit(counts)
    assert p.input_scale_ == "counts" and p.library_size_ and p.log_
    assert p.describe() == ["CPM", "log2(x+1)", "z-score, clip ±10"]
    logged = synthetic(100, 50, 2, counts=False, seed=1)
    q = Preprocessor().fit(logged)
    assert q.input_scale_ == "log" and not q.library_size_ and not q.log_


def test_cpm_log_zscore_values(counts):
    p = Preprocessor(clip=None).fit(counts)
    X = np.asarray(counts.X, dtype=np.float64)
    expected = np.log2(X / X.sum(1, keepdims=True) * 1e6 + 1)
    expected = (expected - expected.mean(0)) / expected.std(0)
    np.testing.assert_allclose(p.transform(counts), expected, rtol=1e-4, atol=1e-4)
    Z = p.transform(counts)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-3)


@pytest.mark.parametrize("options", [dict(), dict(top_k_variance=40), dict(standardize=False),
                                     dict(library_size=False, log=False), dict(library_size=False, log=False,
                                                                               standardize=False)])
def test_transform_leaves_the_input_alone_and_matches_float64(counts, options):
    """Transform works in place on its own float32 copies (streaming preprocesses every batch);
    the caller's matrix is never modified, and values match a float64 computation."""
    X = np.asarray(counts.X, dtype=np.float32).copy()
    genes = list(counts.var_names)
    p = Preprocessor(clip=None, **options).fit(X, genes)
    original = X.copy()
    Z = p.transform(X, genes)
    np.testing.assert_array_equal(X, original)
    ref = X.astype(np.float64)
    if p.library_size_:
        ref = ref / ref.sum(1, keepdims=True) * 1e6
    if p.log_:
        ref = np.log2(ref + 1)
    ref = ref[:, p.gene_index_]
    if p.standardize:
        ref = (ref - ref.mean(0)) / ref.std(0)
    assert Z.dtype == np.float32 and Z.flags.c_contiguous and Z is not X
    np.testing.assert_allclose(Z, ref, rtol=1e-4, atol=1e-4)


def test_transform_never_changes_fit(counts):
    train, test = counts[:150].copy(), counts[150:].copy()
    test.X = test.X * 7 + 3  # a different distribution
    p = Preprocessor(top_k_variance=100, quantile=True).fit(train)
    before = _state(p)
    p.transform(test)
    p.transform(train)
    assert _state(p) == before
    np.testing.assert_array_equal(p.transform(train), Preprocessor(top_k_variance=100, quantile=True).fit_transform(train))


def test_rows_are_independent(counts):
    p = Preprocessor(quantile=True, top_k_variance=50).fit(counts)
    batch = p.transform(counts)
    np.testing.assert_allclose(p.transform(counts[7:8]), batch[7:8], rtol=1e-6)


def test_quantile_ties_share_a_value_whatever_the_gene_order():
    """Tied values (zeros in counts) get the mean reference quantile over their ranks, so the
    result does not depend on gene order; distinct values keep their rank's reference."""
    rng = np.random.default_rng(0)
    X = rng.poisson(5, (40, 30)).astype(np.float32) + 1
    for i in range(40):
        X[i, : i % 20] = 0  # 0 to 19 tied zeros per sample: the low reference quantiles differ
    p = Preprocessor(library_size=False, log=False, standardize=False, quantile=True).fit(X)
    Z = p.transform(X)
    row = 15
    zeros = X[row] == 0
    assert zeros.sum() == 15 and np.ptp(p.quantile_ref_[:15]) > 0.5
    assert np.ptp(Z[row, zeros]) == 0  # one value for all the tied zeros
    ref = p.quantile_ref_.astype(np.float64)
    np.testing.assert_allclose(Z[row, zeros][0], ref[: zeros.sum()].mean(), rtol=1e-6)
    perm = rng.permutation(30)
    genes = [str(i) for i in range(30)]
    Zp = p.transform(X[:, perm], [genes[i] for i in perm])  # same genes, other column order
    np.testing.assert_allclose(Zp, Z, rtol=1e-6)
    # without ties: each value is exactly its rank's reference quantile
    W = rng.normal(size=(3, 30)).astype(np.float32)
    ranks = W.argsort(1).argsort(1)
    np.testing.assert_allclose(p._quantile(W), p.quantile_ref_[ranks], rtol=1e-6)


def test_gene_filters(counts):
    p = Preprocessor(min_mean=3.0, top_k_variance=40).fit(counts)
    assert len(p.genes_) == 40
    X = np.log2(counts.X / counts.X.sum(1, keepdims=True) * 1e6 + 1)
    eligible = X.mean(0) >= 3.0
    var = np.where(eligible, X.var(0), -np.inf)
    assert set(p.genes_) == set(counts.var_names[np.argsort(-var)[:40]])
    assert p.transform(counts).shape == (counts.n_obs, 40)


def test_json_roundtrip(tmp_path, counts):
    p = Preprocessor(top_k_variance=60, quantile=True).fit(counts)
    p.save(tmp_path / "prep.json")
    q = Preprocessor.load(tmp_path / "prep.json")
    np.testing.assert_array_equal(p.transform(counts), q.transform(counts))
    assert q.genes_ == p.genes_


def test_alignment_by_name_with_missing_genes(counts):
    p = Preprocessor().fit(counts)
    shuffled = counts[:, np.random.default_rng(0).permutation(counts.n_vars)].copy()
    np.testing.assert_allclose(p.transform(shuffled), p.transform(counts), rtol=1e-5, atol=1e-5)
    # drop 20% of genes: they are imputed with the training mean -> exactly 0 after z-scoring
    keep = counts.var_names[60:]
    Z = p.transform(counts[:, keep].copy())
    np.testing.assert_array_equal(Z[:, :60], 0)
    with pytest.raises(GeneOverlapError, match=r"only 10.0% of the model's 300 genes"):
        p.transform(counts[:, :30].copy())


def test_bad_inputs(counts):
    with pytest.raises(ConfigError, match="not fitted"):
        Preprocessor().transform(counts)
    bad = counts.copy()
    bad.X[0, 0] = np.nan
    with pytest.raises(InvalidValuesError, match="NaN"):
        Preprocessor().fit(bad)
    z = ad.AnnData(np.random.default_rng(0).normal(size=(20, 10)).astype(np.float32))
    with pytest.raises(NegativeCountsError, match="already standardised"):
        Preprocessor(log=True).fit(z)
    logged = synthetic(50, 30, 2, counts=False, seed=2)
    with pytest.warns(UserWarning, match="already look log-scale"):
        Preprocessor(log=True).fit(logged)
    with pytest.raises(ConfigError, match="library_size"):
        Preprocessor(library_size="yes")
