"""Gene alignment is by name, reports coverage, and refuses too little overlap."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from exprssl.errors import GeneOverlapError
from exprssl.genes import align_genes, strip_version


def _adata(genes, seed=0):
    a = ad.AnnData(np.random.default_rng(seed).random((5, len(genes))).astype(np.float32))
    a.var_names = genes
    return a


def test_strip_version_only_touches_ensembl():
    ids = ["ENSG00000141510.16", "ENST00000269305.9", "ENSMUSG00000059552.13", "ENSG00000182378.14_PAR_Y",
           "HLA-A", "1000_at", "MT-CO1", "ENSG00000141510"]
    assert list(strip_version(ids)) == ["ENSG00000141510", "ENST00000269305", "ENSMUSG00000059552",
                                        "ENSG00000182378_PAR_Y", "HLA-A", "1000_at", "MT-CO1", "ENSG00000141510"]


def test_alignment_by_name_not_position():
    genes = [f"G{i}" for i in range(10)]
    a = _adata(genes)
    shuffled = a[:, np.random.default_rng(1).permutation(10)].copy()
    ref = genes[::-1]
    x1, _ = align_genes(a, ref)
    x2, rep = align_genes(shuffled, ref)
    np.testing.assert_array_equal(x1.X, x2.X)
    np.testing.assert_array_equal(x1.X[:, 0], a.X[:, 9])
    assert list(x2.var_names) == ref and rep.coverage == 1.0


def test_missing_genes_filled_and_reported():
    a = _adata(["A", "B", "C", "X"])
    out, rep = align_genes(a, ["A", "B", "C", "D"], fill_value=0.0)
    assert rep.n_present == 3 and rep.coverage == pytest.approx(0.75) and rep.missing == ["D"] and rep.extra == 1
    assert (out.X[:, 3] == 0).all()
    nan_out, _ = align_genes(a, ["A", "B", "C", "D"])
    assert np.isnan(nan_out.X[:, 3]).all()


def test_versions_match_across_datasets():
    a = _adata(["ENSG00000000003.15", "ENSG00000000005.6"])
    out, rep = align_genes(a, ["ENSG00000000005.5", "ENSG00000000003"])
    assert rep.coverage == 1.0
    np.testing.assert_array_equal(out.X[:, 0], a.X[:, 1])


def test_coverage_below_threshold_is_an_error():
    a = _adata([f"G{i}" for i in range(4)])
    a.uns["exprssl"] = {"source": "cohort.h5ad"}
    ref = [f"G{i}" for i in range(10)]
    with pytest.raises(GeneOverlapError, match=r"cohort.h5ad: only 40.0% of the 10 reference genes found \(4\); "
                                               r"missing e.g. G4, G5.*minimum 50%"):
        align_genes(a, ref)
    _, rep = align_genes(a, ref, min_coverage=0.4)
    assert rep.coverage == pytest.approx(0.4)


def test_duplicate_collapse_is_logged_with_examples_and_the_option(caplog):
    from exprssl.genes import collapse_duplicates

    a = _adata(["A", "B", "A", "C", "C"])
    with caplog.at_level("INFO", logger="exprssl"):
        out = collapse_duplicates(a, "mean", "x.csv")
    assert list(out.var_names) == ["A", "B", "C"]
    np.testing.assert_allclose(out.X[:, 0], (a.X[:, 0] + a.X[:, 2]) / 2, rtol=1e-6)
    assert ("x.csv: merged 2 duplicated gene ids by mean, e.g. A, C (duplicate_genes: sum, mean, first or error)"
            in caplog.text)
