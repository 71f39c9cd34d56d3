"""Gene alignment is by name, reports coverage, and refuses too little overlap."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from exprssl.errors import GeneOverlapError
from exprssl.genes import reindex_genes, strip_version


def _adata(genes, seed=0):
    a = ad.AnnData(np.random.default_rng(seed).random((5, len(genes))).astype(np.float32))
    a.var_names = genes
    return a


def test_strip_version_only_touches_ensembl():
    ids = [
        "ENSG00000141510.16",
        "ENST00000269305.9",
        "ENSMUSG00000059552.13",
        "ENSG00000182378.14_PAR_Y",
        "HLA-A",
        "1000_at",
        "MT-CO1",
        "ENSG00000141510",
    ]
    assert list(strip_version(ids)) == [
        "ENSG00000141510",
        "ENST00000269305",
        "ENSMUSG00000059552",
        "ENSG00000182378_PAR_Y",
        "HLA-A",
        "1000_at",
        "MT-CO1",
        "ENSG00000141510",
    ]


def test_alignment_by_name_not_position():
    genes = [f"G{i}" for i in range(10)]
    a = _adata(genes)
    shuffled = a[:, np.random.default_rng(1).permutation(10)].copy()
    ref = genes[::-1]
    x1, _ = reindex_genes(a, ref)
    x2, rep = reindex_genes(shuffled, ref)
    np.testing.assert_array_equal(x1.X, x2.X)
    np.testing.assert_array_equal(x1.X[:, 0], a.X[:, 9])
    assert list(x2.var_names) == ref and rep.coverage == 1.0


def test_missing_genes_filled_and_reported():
    a = _adata(["A", "B", "C", "X"])
    out, rep = reindex_genes(a, ["A", "B", "C", "D"], fill_value=0.0)
    assert (
        rep.n_present == 3
        and rep.coverage == pytest.approx(0.75)
        and rep.missing == ["D"]
        and rep.extra == 1
    )
    assert (out.X[:, 3] == 0).all()
    nan_out, _ = reindex_genes(a, ["A", "B", "C", "D"])
    assert np.isnan(nan_out.X[:, 3]).all()


def test_versions_match_across_datasets():
    a = _adata(["ENSG00000000003.15", "ENSG00000000005.6"])
    out, rep = reindex_genes(a, ["ENSG00000000005.5", "ENSG00000000003"])
    assert rep.coverage == 1.0
    np.testing.assert_array_equal(out.X[:, 0], a.X[:, 1])


def test_coverage_below_threshold_is_an_error():
    a = _adata([f"G{i}" for i in range(4)])
    a.uns["exprssl"] = {"source": "cohort.h5ad"}
    ref = [f"G{i}" for i in range(10)]
    with pytest.raises(
        GeneOverlapError,
        match=r"cohort.h5ad: only 40.0% of the 10 reference genes found \(4\); "
        r"missing e.g. G4, G5.*minimum 50%",
    ):
        reindex_genes(a, ref)
    _, rep = reindex_genes(a, ref, min_coverage=0.4)
    assert rep.coverage == pytest.approx(0.4)


def test_duplicate_collapse_is_logged_with_examples_and_the_option(caplog):
    from exprssl.genes import collapse_duplicates

    a = _adata(["A", "B", "A", "C", "C"])
    with caplog.at_level("INFO", logger="exprssl"):
        out = collapse_duplicates(a, "mean", "x.csv")
    assert list(out.var_names) == ["A", "B", "C"]
    np.testing.assert_allclose(out.X[:, 0], (a.X[:, 0] + a.X[:, 2]) / 2, rtol=1e-6)
    assert (
        "x.csv: merged 2 duplicated gene ids by mean, e.g. A, C (duplicate_genes: sum, mean, "
        "first or error)" in caplog.text
    )


# ------------------------------------------------- identifier systems, through the shipped table
def test_aliases_and_renamed_symbols_map_to_current_symbols():
    from exprssl.genes import match_genes

    rep = match_genes(
        ["P53", "C10orf54", "FAM46C", "c-Myc", "NOTAGENE"],
        ["TP53", "VSIR", "TENT5C", "MYC", "ESR1"],
    )
    assert rep.direct == 0 and rep.mapped == {
        "TP53": "P53",
        "VSIR": "C10orf54",
        "TENT5C": "FAM46C",
        "MYC": "c-Myc",
    }
    assert list(rep.index) == [0, 1, 2, 3, -1] and rep.missing == ["ESR1"] and rep.ambiguous == {}
    # a model trained on a retired symbol finds the gene under its current name
    old = match_genes(["VSIR", "TENT5C"], ["C10orf54", "FAM46C"])
    assert old.mapped == {"C10orf54": "VSIR", "FAM46C": "TENT5C"}


def test_versioned_and_unversioned_ensembl_ids_map_to_symbols_and_back():
    from exprssl.genes import match_genes

    rep = match_genes(["ENSG00000141510.16", "ENSG00000091831", "TP53"], ["TP53", "ESR1"])
    assert rep.direct == 1 and rep.mapped == {"ESR1": "ENSG00000091831"} and rep.coverage == 1.0
    back = match_genes(["TP53", "ESR1", "MYC"], ["ENSG00000091831.22", "ENSG00000141510"])
    assert list(back.index) == [1, 0] and len(back.mapped) == 2


def test_one_to_many_names_are_reported_ambiguous_never_guessed():
    from exprssl.genes import match_genes

    # MLL2 is an alias of both KMT2D and KMT2B
    rep = match_genes(["MLL2", "TP53"], ["KMT2D", "KMT2B", "TP53"])
    assert rep.ambiguous == {"KMT2D": ["MLL2"], "KMT2B": ["MLL2"]} and list(rep.index) == [
        -1,
        -1,
        1,
    ]
    rep = match_genes(["ENSG00000167548", "ENSG00000272333"], ["MLL2"])
    assert "MLL2" in rep.ambiguous and rep.n_present == 0 and rep.missing == []
    # two data columns for one model gene
    two = match_genes(["P53", "ENSG00000141510"], ["TP53"])
    assert two.ambiguous == {"TP53": ["P53", "ENSG00000141510"]} and two.n_present == 0
    frame = two.to_frame()
    assert frame.to_dict("records") == [
        {"reference": "TP53", "status": "ambiguous", "data": "P53|ENSG00000141510"}
    ]
    assert "0 of 1 reference genes present" in two.summary() and "1 ambiguous" in two.summary()


def test_identifier_system_detection():
    from exprssl.genes import detect_id_system

    assert detect_id_system(["ENSG00000141510.16", "ENSG00000091831"]) == "ensembl"
    assert detect_id_system(["TP53", "ESR1", "MYC", "P53"]) == "symbol"
    assert detect_id_system(["7157", "2099"]) == "entrez"
    assert detect_id_system(["1000_at", "1001_s_at", "AFFX-BioB-5_at"]) == "probe"
    assert detect_id_system(["x1", "x2", "G3"]) == "unknown"
    assert detect_id_system(["0", "1", "2"]) == "unknown"  # AnnData's names for unnamed columns


def test_reindex_genes_reports_table_matches(caplog):
    a = _adata(["ENSG00000141510.16", "ENSG00000091831.22", "MLL2"])
    with caplog.at_level("INFO", logger="exprssl"):
        out, rep = reindex_genes(a, ["TP53", "ESR1", "KMT2D", "KMT2B"], min_coverage=0.5)
    assert list(out.var_names) == ["TP53", "ESR1", "KMT2D", "KMT2B"]
    np.testing.assert_array_equal(out.X[:, 0], a.X[:, 0])
    assert np.isnan(out.X[:, 2:]).all() and sorted(rep.ambiguous) == ["KMT2B", "KMT2D"]
    assert "2 through the identifier table" in caplog.text and "2 ambiguous" in caplog.text


def test_symbol_model_embeds_an_ensembl_cohort_with_the_coverage_the_table_allows():
    import pandas as pd

    from exprssl import SSLModel, datasets
    from exprssl.genes import gene_table, match_genes

    cohort = datasets.load("cptac_ucec")
    cohort = cohort[:, cohort.var_names[:3000]].copy()
    model = SSLModel(
        "scarf",
        epochs=1,
        batch_size=32,
        method_params={"hidden_dims": [16]},
        progress=False,
        val_fraction=0.0,
    ).fit(cohort)
    t = gene_table()
    ens = t[t["kind"] == "ensembl"].merge(
        t[t["kind"] == "symbol"], on="gene_id", suffixes=("_e", "_s")
    )
    one = ens.groupby("name_s")["name_e"].transform("size").eq(1)
    to_ens = dict(zip(ens.loc[one, "name_s"], ens.loc[one, "name_e"] + ".7", strict=True))
    relabelled = cohort.copy()
    relabelled.var_names = pd.Index([to_ens.get(g, g) for g in cohort.var_names])
    n_ens = sum(g in to_ens for g in cohort.var_names)
    assert n_ens > 2000  # most symbols have exactly one Ensembl id
    rep = match_genes(list(relabelled.var_names), model.genes_)
    # an Ensembl id the table gives to two genes is ambiguous (a few): never guessed, so imputed
    assert rep.n_present + len(rep.ambiguous) == len(model.genes_) and len(rep.ambiguous) < 30
    assert len(rep.mapped) == n_ens - len(rep.ambiguous) and rep.missing == []
    without = cohort[:, ~cohort.var_names.isin(list(rep.ambiguous))].copy()
    np.testing.assert_allclose(
        model.transform(relabelled), model.transform(without), rtol=1e-5, atol=1e-5
    )


def test_pretraining_sources_in_another_identifier_system_pool_by_the_table(tmp_path):
    from exprssl.evaluation.cohort import _pool_sources
    from exprssl.io import write_h5ad

    cohort = _adata(["TP53", "ESR1", "MYC", "PTEN"])
    src = _adata(
        ["ENSG00000136997.9", "ENSG00000141510.16", "ENSG00000091831.3"], seed=1
    )  # MYC, TP53, ESR1
    src.obs_names = [f"x{i}" for i in range(5)]
    write_h5ad(src, tmp_path / "src.h5ad")
    pooled, sources = _pool_sources(cohort, [str(tmp_path / "src.h5ad")])
    assert list(pooled.var_names) == ["TP53", "ESR1", "MYC"] and sources[0][2] == pytest.approx(
        0.75
    )
    pooled_src = sources[0][1]
    assert list(pooled_src.var_names) == ["TP53", "ESR1", "MYC"]
    np.testing.assert_array_equal(pooled_src.X, src.X[:, [1, 2, 0]])
