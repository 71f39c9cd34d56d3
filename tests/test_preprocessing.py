"""Preprocessing: fit on train only, transform never changes the fit, JSON round-trip."""

from __future__ import annotations

import copy
import logging

import anndata as ad
import numpy as np
import pytest

from exprssl.datasets import synthetic
from exprssl.errors import (
    ConfigError,
    DataFileError,
    GeneOverlapError,
    InvalidValuesError,
    NegativeCountsError,
    NonNumericError,
    NotFittedError,
)
from exprssl.preprocessing import OPTIONS, Preprocessor


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


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(top_k_variance=40),
        dict(standardize=False),
        dict(library_size=False, log=False),
        dict(library_size=False, log=False, standardize=False),
    ],
)
def test_transform_leaves_the_input_alone_and_matches_float64(counts, options):
    """Transform works in place on its own float32 copies (streaming preprocesses every batch);
    the caller's matrix is never modified, and values match a float64 computation."""
    X = np.asarray(counts.X, dtype=np.float32).copy()
    genes = list(counts.var_names)
    p = Preprocessor(clip=None, **options).fit(X, genes=genes)
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
    np.testing.assert_array_equal(
        p.transform(train), Preprocessor(top_k_variance=100, quantile=True).fit_transform(train)
    )


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
    with pytest.raises(
        GeneOverlapError,
        match=r"only 30 of the model's 300 genes found \(10.0%\); missing e.g. GENE00030, ",
    ):
        p.transform(counts[:, :30].copy())


def test_bad_inputs(counts):
    with pytest.raises(NotFittedError, match="not fitted"):
        Preprocessor().transform(counts)
    bad = counts.copy()
    bad.X[0, 0] = np.nan
    with pytest.raises(InvalidValuesError, match="NaN"):
        Preprocessor().fit(bad)
    z = ad.AnnData(np.random.default_rng(0).normal(size=(20, 10)).astype(np.float32))
    with pytest.raises(NegativeCountsError, match="already standardised"):
        Preprocessor(log=True).fit(z)
    logged = synthetic(50, 30, 2, counts=False, seed=2)
    records = []  # one line through the exprssl logger, not a Python UserWarning with a source path
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("exprssl").addHandler(handler)
    try:
        Preprocessor(log=True).fit(logged)
    finally:
        logging.getLogger("exprssl").removeHandler(handler)
    assert any("already look log-scale" in r.getMessage() for r in records)
    with pytest.raises(ConfigError, match="library_size"):
        Preprocessor(library_size="yes").fit(counts)


# ---------------------------------------------------------------- scikit-learn estimator contract
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("library_size", "yes", "library_size must be true, false or auto, got 'yes'"),
        ("quantile", "no", "quantile must be true or false, got 'no'"),
        ("top_k_variance", 0, "top_k_variance must be an integer >= 1 (or null), got 0"),
        ("top_k_variance", 2.5, "top_k_variance must be an integer >= 1"),
        ("clip", -1, "clip must be a finite number > 0 (or null), got -1"),
        ("min_mean", "abc", "min_mean must be a finite number (or null), got 'abc'"),
        ("min_coverage", 1.5, "min_coverage must be a finite number in [0, 1], got 1.5"),
        ("standardize", None, "standardize must be true or false, got None"),
    ],
)
def test_options_are_stored_as_given_and_checked_by_fit(counts, option, value, message):
    p = Preprocessor(**{option: value})  # scikit-learn: __init__ stores, never checks
    assert p.get_params()[option] == value
    for call in (p.check_params, lambda: p.fit(counts)):
        with pytest.raises(ConfigError) as e:
            call()
        assert message in str(e.value) and "\n" not in str(e.value)


def test_from_options_names_the_accepted_keys():
    assert OPTIONS == tuple(Preprocessor().get_params()) or set(OPTIONS) == set(
        Preprocessor().get_params()
    )
    assert "min_coverage" in OPTIONS
    assert Preprocessor.from_options({"top_k_variance": 10}).top_k_variance == 10
    with pytest.raises(
        ConfigError, match=r"unknown preprocessing option\(s\): foo; accepted: library_size, log, "
    ):
        Preprocessor.from_options({"foo": 1, "log": True})
    with pytest.raises(ConfigError, match="preprocessing options must be a mapping"):
        Preprocessor.from_options(5)


def test_dataframes_arrays_and_anndata_agree(counts):
    import pandas as pd

    X = np.asarray(counts.X, dtype=np.float32)
    genes = list(counts.var_names)
    df = pd.DataFrame(X, index=counts.obs_names, columns=genes)
    p_df = Preprocessor(top_k_variance=50).fit(df)
    p_ad = Preprocessor(top_k_variance=50).fit(counts)
    p_np = Preprocessor(top_k_variance=50).fit(X)
    assert p_df.n_features_in_ == p_np.n_features_in_ == 300
    assert list(p_df.feature_names_in_) == genes and not hasattr(p_np, "feature_names_in_")
    np.testing.assert_array_equal(p_df.transform(df), p_ad.transform(counts))
    np.testing.assert_array_equal(p_np.transform(X), p_ad.transform(counts))
    # a DataFrame is aligned by its column names, whatever their order
    np.testing.assert_allclose(p_df.transform(df[genes[::-1]]), p_df.transform(df), rtol=1e-6)
    np.testing.assert_array_equal(
        p_df.get_feature_names_out(), np.asarray(p_df.genes_, dtype=object)
    )


def test_unnamed_columns_are_taken_in_fit_order_or_refused(counts, caplog):
    X = np.asarray(counts.X, dtype=np.float32)
    p = Preprocessor().fit(counts)  # fitted with gene names
    with caplog.at_level("WARNING", logger="exprssl"):
        Z = p.transform(X)
    np.testing.assert_array_equal(Z, p.transform(counts))
    assert "no gene names; its 300 columns are taken as the fitted genes" in caplog.text
    with pytest.raises(
        GeneOverlapError, match="X has 299 features, but Preprocessor is expecting 300"
    ):
        p.transform(X[:, 1:])


def test_non_numeric_input_is_one_line(counts):
    with pytest.raises(NonNumericError, match="values are not numbers") as e:
        Preprocessor().fit(np.array([["a", "b"], ["c", "d"]]))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="2-D samples x genes"):
        Preprocessor().fit([1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="need at least 2 samples"):
        Preprocessor().fit(np.ones((1, 4)))


def test_missing_genes_are_reported_at_default_verbosity(counts, caplog):
    p = Preprocessor().fit(counts)
    with caplog.at_level("WARNING", logger="exprssl"):
        p.transform(counts[:, 60:].copy())
    [record] = [r for r in caplog.records if "genes found" in r.getMessage()]
    assert record.levelname == "WARNING" and record.name == "exprssl"
    assert (
        "240 of the model's 300 genes found (80.0%); 60 missing (GENE00000, GENE00001, GENE00002, "
        "GENE00003, GENE00004, ...)" in record.getMessage()
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="exprssl"):
        p.transform(counts)  # all genes: silent
    assert not caplog.records


def test_options_take_effect_at_fit(counts):
    """set_params after fit does not half-change a fitted preprocessor (scikit-learn semantics)."""
    p = Preprocessor(clip=None).fit(counts)
    Z = p.transform(counts)
    p.set_params(clip=0.5, quantile=True)
    np.testing.assert_array_equal(p.transform(counts), Z)
    assert np.abs(p.fit(counts).transform(counts)).max() <= 0.5


def test_refit_forgets_the_previous_fit(counts):
    p = Preprocessor(quantile=True).fit(counts)
    assert hasattr(p, "quantile_ref_")
    p.set_params(quantile=False, standardize=False).fit(counts)
    assert not hasattr(p, "quantile_ref_") and not hasattr(p, "mean_")


def test_format_version_1_files_stay_readable(tmp_path):
    """A preprocessor.json as models saved before this version wrote it."""
    old = {
        "version": 1,
        "params": {
            "library_size": "auto",
            "log": "auto",
            "min_mean": None,
            "top_k_variance": 2,
            "quantile": False,
            "standardize": True,
            "clip": 10.0,
            "min_coverage": 0.5,
        },
        "fitted": {
            "input_scale_": "log",
            "library_size_": False,
            "log_": False,
            "input_genes_": ["A", "B", "C"],
            "gene_index_": [0, 2],
            "fill_": [1.0, 3.0],
            "mean_": [1.0, 3.0],
            "scale_": [2.0, 0.5],
        },
    }
    path = tmp_path / "preprocessor.json"
    path.write_text(__import__("json").dumps(old))
    p = Preprocessor.load(path)
    assert p.genes_ == ["A", "C"] and p.describe() == [
        "top 2 genes by variance",
        "z-score, clip ±10",
    ]
    np.testing.assert_allclose(
        p.transform(np.array([[3.0, 9.0, 2.0]]), ["A", "B", "C"]), [[1.0, -2.0]]
    )
    assert Preprocessor.from_dict(p.to_dict()).to_dict() == p.to_dict() == old


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["fitted"].update(fill_=[1.0]), "fill_ is 1 values, expected 2"),
        (lambda d: d["fitted"].update(gene_index_=[0, 5]), "gene_index_ is not an increasing list"),
        (lambda d: d["fitted"].pop("input_genes_"), "lacks input_genes_"),
        (lambda d: d["params"].update(foo=1), "unknown preprocessing option"),
        (lambda d: d.update(version=7), "format"),
    ],
)
def test_damaged_preprocessor_files_are_one_line(tmp_path, counts, change, message):
    import json

    d = Preprocessor(top_k_variance=2).fit(counts[:, :4].copy()).to_dict()
    change(d)
    path = tmp_path / "preprocessor.json"
    path.write_text(json.dumps(d))
    with pytest.raises(DataFileError, match=message) as e:
        Preprocessor.load(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    path.write_bytes(b"\x80\x81 not json")
    with pytest.raises(DataFileError, match="not a valid preprocessor file"):
        Preprocessor.load(path)


def test_gene_names_passed_where_y_goes_are_refused(counts):
    """fit(X, y) for scikit-learn: the old positional genes would silently become y."""
    X = np.asarray(counts.X, dtype=np.float32)
    with pytest.raises(
        ConfigError, match="y has 300 entries for 200 samples; .* pass gene names as genes="
    ):
        Preprocessor().fit(X, list(counts.var_names))
    labels = counts.obs["label"].to_numpy()
    assert Preprocessor().fit(X, labels).genes_ == Preprocessor().fit(X).genes_
