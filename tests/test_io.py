"""Readers, label joins and every bad input of the data layer."""

from __future__ import annotations

import gzip

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

import exprssl
from exprssl import io
from exprssl.errors import (
    DataFileError,
    DuplicateGenesError,
    DuplicateSamplesError,
    InvalidValuesError,
    LabelColumnError,
    LabelMatchError,
    NegativeCountsError,
    NonNumericError,
    SingleClassError,
    TruncatedFileError,
    UnknownFormatError,
)

GENES = [f"GENE{i}" for i in range(40)]
SAMPLES = [f"S{i}" for i in range(6)]


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.poisson(50, (6, 40)).astype(float), index=SAMPLES, columns=GENES)


def _check(a: ad.AnnData, frame: pd.DataFrame):
    assert a.shape == frame.shape
    assert list(a.obs_names) == list(frame.index) and list(a.var_names) == list(frame.columns)
    assert a.X.dtype == np.float32
    np.testing.assert_allclose(a.X, frame.to_numpy())


@pytest.mark.parametrize(
    "name,writer",
    [
        ("x.csv", lambda df, p: df.to_csv(p)),
        ("x.tsv", lambda df, p: df.to_csv(p, sep="\t")),
        ("x.tsv.gz", lambda df, p: df.to_csv(p, sep="\t", compression="gzip")),
        ("x.txt", lambda df, p: df.to_csv(p, sep="\t")),
        ("x.parquet", lambda df, p: df.to_parquet(p)),
        ("x.h5ad", lambda df, p: ad.AnnData(df.astype(np.float32)).write_h5ad(p)),
    ],
)
def test_readers_samples_in_rows(tmp_path, frame, name, writer):
    p = tmp_path / name
    writer(frame, p)
    a = io.read_file(p)
    _check(a, frame)
    assert a.uns["exprssl"]["source"] == str(p)


@pytest.mark.parametrize(
    "name,writer",
    [
        ("g.csv", lambda df, p: df.to_csv(p)),
        ("g.tsv.gz", lambda df, p: df.to_csv(p, sep="\t", compression="gzip")),
        ("g.parquet", lambda df, p: df.to_parquet(p)),
    ],
)
def test_readers_genes_in_rows_auto_and_explicit(tmp_path, frame, name, writer):
    p = tmp_path / name
    writer(frame.T, p)  # 40 genes x 6 samples on disk
    _check(io.read_file(p), frame)  # auto: the longer axis is genes
    _check(io.read_file(p, orientation="genes_in_rows"), frame)
    wrong = io.read_file(p, orientation="samples_in_rows")
    assert wrong.shape == (40, 6)


def test_gct(tmp_path, frame):
    p = tmp_path / "x.gct"
    body = frame.T.copy()
    body.insert(0, "Description", "desc")
    with open(p, "w") as fh:
        fh.write(f"#1.2\n{body.shape[0]}\t{frame.shape[0]}\n")
        body.to_csv(fh, sep="\t", index_label="Name")
    _check(io.read_file(p), frame)


def _write_archs4(path, n_genes=30, n_samples=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 1000, (n_genes, n_samples)).astype(
        np.uint32
    )  # genes x samples, like ARCHS4
    with h5py.File(path, "w") as f:
        f.create_dataset("data/expression", data=X, chunks=(n_genes, 5), compression="gzip")
        f.create_dataset(
            "meta/genes/symbol", data=np.array([f"G{i}" for i in range(n_genes)], dtype="S")
        )
        f.create_dataset(
            "meta/samples/geo_accession",
            data=np.array([f"GSM{i}" for i in range(n_samples)], dtype="S"),
        )
        f.create_dataset(
            "meta/samples/series_id",
            data=np.array([f"GSE{i // 10}" for i in range(n_samples)], dtype="S"),
        )
        f.create_dataset(
            "meta/samples/title", data=np.array([f"t{i}" for i in range(n_samples)], dtype="S")
        )
    return X


def test_archs4_full_and_partial(tmp_path):
    p = tmp_path / "human_gene_v2.h5"
    X = _write_archs4(p)
    a = io.read_file(p)
    assert a.shape == (50, 30)
    np.testing.assert_array_equal(a.X, X.T)
    assert a.obs["series_id"].iloc[12] == "GSE1"
    part = io.read_file(p, samples=["GSM7", "GSM2", "GSM40"], genes=["G5", "G0"])
    assert list(part.obs_names) == ["GSM7", "GSM2", "GSM40"] and list(part.var_names) == [
        "G5",
        "G0",
    ]
    np.testing.assert_array_equal(part.X, X[[5, 0]][:, [7, 2, 40]].T)
    assert list(part.obs["title"]) == ["t7", "t2", "t40"]


def test_archs4_reads_only_requested_columns(tmp_path, monkeypatch):
    """The selection is read from disk, never the whole matrix."""
    p = tmp_path / "a.h5"
    _write_archs4(p)
    seen = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        seen.append(key)
        return orig(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    io.read_file(p, samples=[3, 1])
    data_reads = [k for k in seen if isinstance(k, tuple)]
    assert data_reads and all(
        not (isinstance(k[1], slice) and k[1] == slice(None)) for k in data_reads
    )


def test_version_stripping_and_duplicate_policies(tmp_path):
    df = pd.DataFrame(
        [[1.0, 2.0, 3.0, 4.0]] * 3,
        index=["a", "b", "c"],
        columns=["ENSG00000141510.16", "ENSG00000141510.2", "HLA-A", "1000_at"],
    )
    p = tmp_path / "d.csv"
    df.to_csv(p)
    a = io.read_file(p)
    assert list(a.var_names) == ["ENSG00000141510", "HLA-A", "1000_at"]
    np.testing.assert_array_equal(a.X[0], [3.0, 3.0, 4.0])
    assert io.read_file(p, duplicate_genes="mean").X[0, 0] == 1.5
    assert io.read_file(p, duplicate_genes="first").X[0, 0] == 1.0
    with pytest.raises(DuplicateGenesError, match="ENSG00000141510"):
        io.read_file(p, duplicate_genes="error")


# ----------------------------------------------------------------------------- bad input
def test_missing_and_empty_file(tmp_path):
    with pytest.raises(DataFileError, match="nope.csv"):
        io.read_file(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFileError, match="empty.csv: file is empty"):
        io.read_file(tmp_path / "empty.csv")


def test_unknown_format(tmp_path):
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(UnknownFormatError, match=r"x\.xlsx.*supported"):
        io.read_file(tmp_path / "x.xlsx")


def test_nan_and_inf(tmp_path, frame):
    frame.iloc[2, 5] = np.nan
    p = tmp_path / "nan.csv"
    frame.to_csv(p)
    with pytest.raises(
        InvalidValuesError, match=r"nan.csv: 1 NaN values \(first at sample S2, gene GENE5\)"
    ):
        io.read_file(p)
    frame.iloc[2, 5] = np.inf
    frame.to_parquet(tmp_path / "inf.parquet")
    with pytest.raises(InvalidValuesError, match="inf.parquet"):
        io.read_file(tmp_path / "inf.parquet")


def test_non_numeric_cell(tmp_path, frame):
    frame = frame.astype(object)
    frame.iloc[1, 3] = "high"
    p = tmp_path / "t.csv"
    frame.to_csv(p)
    with pytest.raises(
        NonNumericError, match=r"t.csv: non-numeric value 'high' at row 'S1', column 'GENE3'"
    ):
        io.read_file(p)


def test_negative_counts(tmp_path, frame):
    frame.iloc[0, 0] = -3
    p = tmp_path / "neg.csv"
    frame.to_csv(p)
    with pytest.raises(
        NegativeCountsError, match=r"neg.csv: 1 negative values.*sample S0, gene GENE0"
    ):
        io.read_file(p, counts_expected=True)
    assert io.read_file(p).X[0, 0] == -3  # allowed when counts are not expected (e.g. z-scores)


def test_duplicate_sample_ids(tmp_path, frame):
    frame.index = ["S0", "S1", "S1", "S3", "S4", "S4"]
    p = tmp_path / "dup.csv"
    frame.to_csv(p)
    with pytest.raises(
        DuplicateSamplesError, match="dup.csv: 2 duplicated sample ids, e.g. S1, S4"
    ):
        io.read_file(p)


def test_truncated_hdf5_h5ad_parquet_gzip(tmp_path, frame):
    cases = {}
    _write_archs4(tmp_path / "a.h5")
    cases["a.h5"] = tmp_path / "a.h5"
    ad.AnnData(frame.astype(np.float32)).write_h5ad(tmp_path / "b.h5ad")
    cases["b.h5ad"] = tmp_path / "b.h5ad"
    frame.to_parquet(tmp_path / "c.parquet")
    cases["c.parquet"] = tmp_path / "c.parquet"
    big = pd.DataFrame(np.random.default_rng(0).random((200, 300)))
    big.to_csv(tmp_path / "d.csv.gz", compression="gzip")
    cases["d.csv.gz"] = tmp_path / "d.csv.gz"
    for name, p in cases.items():
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        with pytest.raises(TruncatedFileError, match=name.replace(".", r"\.")):
            io.read_file(p)


# ----------------------------------------------------------------------------- labels
@pytest.fixture
def expr():
    a = ad.AnnData(np.ones((4, 3), dtype=np.float32))
    a.obs_names = [
        "TCGA-A1-A0SB-01A-11R-A144-07",
        "TCGA-A1-A0SD-01A-11R-A115-07",
        "TCGA-A1-A0SD-11A-11R-A115-07",
        "TCGA-ZZ-0000-01A-11R-A000-07",
    ]
    a.var_names = ["a", "b", "c"]
    return a


def test_add_labels_exact_and_report(tmp_path):
    a = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    a.obs_names = ["s1", "s2", "s3"]
    sheet = tmp_path / "labels.tsv"
    pd.DataFrame({"id": ["s3", "s1", "x9"], "tissue": ["lung", "liver", "skin"]}).to_csv(
        sheet, sep="\t", index=False
    )
    out = io.add_labels(a, sheet)
    assert list(out.obs["tissue"].fillna("NA")) == ["liver", "NA", "lung"]
    assert out.uns["exprssl"]["label_match"] == {"matched": 2, "n_samples": 3, "n_label_rows": 3}
    assert "tissue" not in a.obs  # input untouched


def test_wide_clinical_sheet_joins_quietly_and_numbers_read_as_text_are_ranges(tmp_path):
    """A real clinical sheet (CPTAC: ~150 columns, scientific notation) used to print one pandas
    PerformanceWarning per column and list each measured value as a 'class'."""
    import warnings

    rng = np.random.default_rng(0)
    a = ad.AnnData(np.ones((40, 2), dtype=np.float32))
    a.obs_names = [f"s{i}" for i in range(40)]
    a.obs["tissue"] = "old"
    cols = {f"m{j}": [f"{v:.3E}" for v in rng.random(40)] for j in range(150)}
    sheet = pd.DataFrame({"id": a.obs_names, "tissue": ["lung", "liver"] * 20, **cols})
    path = tmp_path / "clinical.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = io.add_labels(a, path)
    assert out.obs.shape == (40, 151) and list(out.obs["tissue"][:2]) == ["lung", "liver"]
    s = io.summarize(out)
    assert set(s["label_columns"]) == {"tissue"}
    assert len(s["numeric_columns"]) == 150 and s["numeric_columns"]["m0"]["n"] == 40


def test_add_labels_tcga_levels(expr):
    patients = pd.DataFrame({"case": ["TCGA-A1-A0SB", "TCGA-A1-A0SD"], "stage": ["I", "II"]})
    out = io.add_labels(expr, patients, match="tcga_patient")
    assert list(out.obs["stage"].fillna("NA")) == ["I", "II", "II", "NA"]
    samples = pd.DataFrame(
        {"sample": ["TCGA-A1-A0SD-11", "TCGA-A1-A0SB-01"], "type": ["normal", "tumour"]}
    )
    out = io.add_labels(expr, samples, match="tcga_sample")
    assert list(out.obs["type"].fillna("NA")) == ["tumour", "NA", "normal", "NA"]
    pairs = pd.DataFrame({"id": ["TCGA-A1-A0SB|TCGA-A1-A0SB-01A"], "x": ["y"]})
    assert (
        io.add_labels(expr, pairs, match="tcga_sample").uns["exprssl"]["label_match"]["matched"]
        == 1
    )
    assert io.tcga_id("TCGA-A1-A0SB-01A-11R-A144-07", "sample") == "TCGA-A1-A0SB-01"
    assert io.tcga_id("TCGA-A1-A0SB-01A-11R-A144-07", "patient") == "TCGA-A1-A0SB"


def test_label_file_matching_nothing(tmp_path, expr):
    sheet = tmp_path / "clin.csv"
    pd.DataFrame({"case": ["TCGA-A1-A0SB"], "stage": ["I"]}).to_csv(sheet, index=False)
    with pytest.raises(LabelMatchError, match=r"clin.csv: no sample id matches.*tcga_patient"):
        io.add_labels(expr, sheet)


def test_label_column_missing_and_single_class(tmp_path, expr):
    with pytest.raises(LabelColumnError, match="column 'subtype' not found"):
        io.add_labels(expr, pd.DataFrame({"id": ["x"], "stage": ["I"]}), columns=["subtype"])
    with pytest.raises(LabelColumnError, match="label column 'stage' not found"):
        io.require_label(expr, "stage")
    expr.obs["stage"] = ["I"] * 4
    with pytest.raises(SingleClassError, match=r"'stage' has 1 class \(I\)"):
        io.require_label(expr, "stage")


def test_load_data_bundled_name_and_unknown():
    a = io.load_dataset("all_leukemia")
    assert a.shape == (128, 12625)
    with pytest.raises(
        DataFileError, match="neither an existing file nor a bundled dataset.*all_leukemia"
    ):
        io.load_dataset("tcga_everything")


def test_summarize_scale_and_labels():
    s = io.summarize(io.load_dataset("all_leukemia"))
    assert (s["n_samples"], s["n_genes"]) == (128, 12625)
    assert s["scale"] == "log" and 1.9 < s["min"] < 2.1 and 14 < s["max"] < 14.2
    assert s["label_columns"]["mol.biol"]["BCR/ABL"] == 37
    # age is a measurement, summarised as a range rather than listed as 42 "classes"
    assert "age" not in s["label_columns"] and s["numeric_columns"]["age"]["min"] == 5.0
    assert s["numeric_columns"]["age"]["max"] == 58.0 and s["numeric_columns"]["age"]["n"] == 123
    counts = ad.AnnData(np.random.default_rng(0).poisson(500, (5, 20)).astype(np.float32))
    assert io.summarize(counts)["scale"] == "counts"


def test_write_h5ad_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.h5ad"
    target.write_text("precious")
    a = ad.AnnData(np.ones((2, 2), dtype=np.float32))

    def boom(self, path, **kw):
        with open(path, "w") as fh:
            fh.write("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", boom)
    with pytest.raises(RuntimeError):
        io.write_h5ad(a, target)
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5ad"]


def test_gzip_csv_roundtrip_values(tmp_path, frame):
    p = tmp_path / "x.csv.gz"
    with gzip.open(p, "wt") as fh:
        frame.to_csv(fh)
    _check(io.read_file(p), frame)


# ----------------------------------------------------------------------------- duplicates are seen
def _dup_gene_frame():
    """Samples x genes with gene G0 twice: merged values are 2 (sum), 1 (mean), 0 (first)."""
    return pd.DataFrame(
        [[0.0, 1.0, 2.0, 3.0]] * 3, index=["S0", "S1", "S2"], columns=["G0", "G1", "G0", "G2"]
    )


def _write_parquet_raw(df: pd.DataFrame, path, index_name: str):
    """pandas refuses duplicate column names in to_parquet; pyarrow writes what it is given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(list(df.index))] + [
        pa.array(df.iloc[:, i].to_numpy()) for i in range(df.shape[1])
    ]
    pq.write_table(pa.table(arrays, names=[index_name, *map(str, df.columns)]), path)


def _write_gct(df_genes_by_samples: pd.DataFrame, path):
    body = df_genes_by_samples.copy()
    body.insert(0, "Description", "na")
    with open(path, "w") as fh:
        fh.write(f"#1.2\n{body.shape[0]}\t{body.shape[1] - 1}\n")
        fh.write(body.to_csv(sep="\t", index_label="Name"))


@pytest.mark.parametrize(
    "name,write",
    [
        ("h.csv", lambda df, p: df.to_csv(p, index_label="sample")),
        (
            "h.tsv.gz",
            lambda df, p: df.to_csv(p, sep="\t", index_label="sample", compression="gzip"),
        ),
        ("h.txt", lambda df, p: df.to_csv(p, sep="\t", index_label="sample")),
        ("h.parquet", lambda df, p: _write_parquet_raw(df, p, "sample")),
    ],
    ids=["csv", "tsv.gz", "txt", "parquet"],
)
@pytest.mark.parametrize("policy,expected", [("sum", 2.0), ("mean", 1.0), ("first", 0.0)])
def test_duplicate_genes_in_header_are_merged_not_renamed(tmp_path, name, write, policy, expected):
    p = tmp_path / name
    write(_dup_gene_frame(), p)
    a = io.read_file(p, orientation="samples_in_rows", duplicate_genes=policy)
    assert list(a.var_names) == ["G0", "G1", "G2"]  # no 'G0.1'
    np.testing.assert_array_equal(a.X[:, 0], [expected] * 3)
    with pytest.raises(
        DuplicateGenesError, match=rf"{name.replace('.', '[.]')}: 1 duplicated gene ids, e\.g\. G0"
    ):
        io.read_file(p, orientation="samples_in_rows", duplicate_genes="error")


@pytest.mark.parametrize(
    "name,write",
    [
        ("r.csv", lambda df, p: df.T.to_csv(p, index_label="gene")),
        ("r.parquet", lambda df, p: df.T.to_parquet(p)),
        ("r.gct", lambda df, p: _write_gct(df.T, p)),
    ],
    ids=["csv", "parquet", "gct"],
)
def test_duplicate_genes_in_first_column_are_merged(tmp_path, name, write):
    p = tmp_path / name
    write(_dup_gene_frame(), p)
    a = (
        io.read_file(p, orientation="genes_in_rows")
        if not name.endswith(".gct")
        else io.read_file(p)
    )
    assert list(a.var_names) == ["G0", "G1", "G2"] and a.shape == (3, 3)
    np.testing.assert_array_equal(a.X[:, 0], [2.0] * 3)
    with pytest.raises(DuplicateGenesError, match="G0"):
        io.read_file(p, orientation="genes_in_rows", duplicate_genes="error")


@pytest.mark.parametrize(
    "name,write",
    [
        ("s.csv", lambda df, p: df.to_csv(p, index_label="gene")),
        ("s.tsv.gz", lambda df, p: df.to_csv(p, sep="\t", index_label="gene", compression="gzip")),
        ("s.parquet", lambda df, p: _write_parquet_raw(df, p, "gene")),
        ("s.gct", _write_gct),
    ],
    ids=["csv", "tsv.gz", "parquet", "gct"],
)
def test_duplicate_sample_ids_in_header_are_refused(tmp_path, name, write):
    genes_by_samples = pd.DataFrame(
        np.ones((5, 4)), index=[f"G{i}" for i in range(5)], columns=["S0", "S1", "S0", "S3"]
    )
    p = tmp_path / name
    write(genes_by_samples, p)
    with pytest.raises(
        DuplicateSamplesError,
        match=rf"{name.replace('.', '[.]')}: 1 duplicated sample ids, e\.g\. S0;",
    ):
        io.read_file(p, orientation="genes_in_rows") if not name.endswith(".gct") else io.read_file(
            p
        )


def test_duplicate_sample_ids_in_h5ad_are_refused(tmp_path, frame, recwarn):
    a = ad.AnnData(frame.astype(np.float32))
    a.obs_names = ["S0", "S1", "S0", "S3", "S4", "S5"]
    a.write_h5ad(tmp_path / "d.h5ad")
    with pytest.raises(DuplicateSamplesError, match=r"d\.h5ad: 1 duplicated sample ids, e\.g\. S0"):
        io.read_file(tmp_path / "d.h5ad")


# ----------------------------------------------------------------------------- text table variants
def _expected_small():
    return pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["S0", "S1"], columns=["G0", "G1"])


@pytest.mark.parametrize(
    "name,content",
    [
        (
            "utf16.csv",
            "sample,G0,G1\nS0,1,2\nS1,3,4\n".encode("utf-16"),
        ),  # Excel 'Unicode text': BOM
        ("utf8bom.csv", "\ufeffsample,G0,G1\nS0,1,2\nS1,3,4\n".encode()),
        ("rstyle.csv", b"G0,G1\nS0,1,2\nS1,3,4\n"),  # R write.table: no name for the id column
        ("rnames.csv", b'"","G0","G1"\n"S0",1,2\n"S1",3,4\n'),  # R write.csv
        ("trailing.csv", b"sample,G0,G1,\nS0,1,2,\nS1,3,4,\n"),  # a separator ending every line
        ("crlf.tsv", b"sample\tG0\tG1\r\nS0\t1\t2\r\nS1\t3\t4\r\n"),
    ],
    ids=["utf16-bom", "utf8-bom", "r-write-table", "r-write-csv", "trailing-separator", "crlf"],
)
def test_text_table_variants_read_correctly(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    _check(io.read_file(p, orientation="samples_in_rows"), _expected_small())


def test_ids_are_kept_as_written(tmp_path):
    p = tmp_path / "ids.csv"
    p.write_text("sample,0001,2\n001,1,2\n1.0,3,4\n")
    a = io.read_file(p, orientation="samples_in_rows")
    assert list(a.obs_names) == ["001", "1.0"] and list(a.var_names) == ["0001", "2"]
    mid = tmp_path / "mid.csv"
    mid.write_text("G0,sample,G1\n1,S0,2\n3,S1,4\n")
    _check(
        io.read_file(mid, orientation="samples_in_rows", sample_id_column="sample"),
        _expected_small(),
    )
    with pytest.raises(LabelColumnError, match=r"mid\.csv: id column 'id' not found"):
        io.read_file(mid, sample_id_column="id")


def test_text_table_errors_name_the_problem(tmp_path):
    comma = tmp_path / "comma.txt"  # the separator is sniffed, whatever the extension says
    comma.write_text("sample,G0,G1\nS0,1,2\nS1,3,4\n")
    assert io.read_file(comma, orientation="samples_in_rows").shape == (2, 2)
    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("sample,G0,,G2\nS0,1,2,3\nS1,3,4,5\n")
    with pytest.raises(
        DataFileError, match=r"unnamed\.csv: column 3 \(after 'G0'\) has values but no name"
    ):
        io.read_file(unnamed)
    no_id = tmp_path / "noid.csv"
    no_id.write_text("sample,G0,G1\nS0,1,2\n,3,4\n")
    with pytest.raises(DataFileError, match=r"noid\.csv: data row 2 has no id"):
        io.read_file(no_id)
    with pytest.raises(UnknownFormatError, match=r"noid\.csv: unknown format 'xlsx'"):
        io.read_file(no_id, format="xlsx")


def test_gct_version_and_dimensions_are_checked(tmp_path, frame):
    p = tmp_path / "x.gct"
    _write_gct(frame.T, p)
    p.write_text(p.read_text().replace("#1.2", "#1.3", 1))
    with pytest.raises(DataFileError, match=r"x\.gct: GCT version '#1\.3' is not supported"):
        io.read_file(p)
    _write_gct(frame.T, p)
    p.write_text(p.read_text().replace("40\t6", "40\t7", 1))
    with pytest.raises(
        DataFileError,
        match=r"x\.gct: the dimension line says 40 genes x 7 samples, the table "
        r"has 40 genes x 6 samples",
    ):
        io.read_file(p)


# ------------------------------------------------------------------ warnings that name the rule
def test_orientation_auto_warns_when_it_guesses(tmp_path, caplog):
    rng = np.random.default_rng(0)
    p = tmp_path / "wide.csv"  # 100 samples x 60 genes, samples in rows: auto transposes it
    pd.DataFrame(
        rng.poisson(5, (100, 60)),
        index=[f"S{i}" for i in range(100)],
        columns=[f"G{i}" for i in range(60)],
    ).to_csv(p, index_label="sample")
    with caplog.at_level("WARNING", logger="exprssl"):
        a = io.read_file(p)
    assert a.shape == (60, 100)
    [record] = [r for r in caplog.records if "orientation" in r.getMessage()]
    msg = record.getMessage()
    assert record.levelname == "WARNING" and "\n" not in msg
    assert msg.startswith(
        f"{p}: orientation 'auto' takes the longer axis as genes, so this 100 x 60 table is "
        "read as 60 samples x 100 genes (genes in rows)"
    )
    assert "--orientation samples_in_rows|genes_in_rows" in msg
    caplog.clear()
    with caplog.at_level("WARNING", logger="exprssl"):
        assert io.read_file(p, orientation="samples_in_rows").shape == (100, 60)
        clear = tmp_path / "clear.csv"  # 1,500 genes x 20 samples: the common case, no warning
        pd.DataFrame(rng.poisson(5, (1500, 20))).to_csv(clear, index_label="gene")
        assert io.read_file(clear).shape == (20, 1500)
    assert not [r for r in caplog.records if "orientation" in r.getMessage()]


def _tcga_barcodes(n: int, rng) -> list[str]:
    return [
        f"TCGA-{rng.integers(10, 99):02d}-{i:04d}-{rng.choice(['01', '11'])}A-11R-A{i % 900:03d}-13"
        for i in range(n)
    ]


def test_more_samples_than_genes_read_by_their_identifiers(tmp_path, caplog):
    """0.3 read a 1,659 TCGA profiles x 298 miRNAs table as 298 samples x 1,659 'genes' named by
    barcodes, without a word: the longer axis is not the gene axis here, the names say so."""
    rng = np.random.default_rng(0)
    samples = _tcga_barcodes(1659, rng)
    mirnas = [f"hsa-mir-{i}" for i in range(290)] + [f"hsa-let-7{c}" for c in "abcdefgh"]
    p = tmp_path / "mirna.csv"
    pd.DataFrame(rng.poisson(40, (1659, 298)), index=samples, columns=mirnas).to_csv(
        p, index_label="barcode"
    )
    with caplog.at_level("INFO", logger="exprssl"):
        a = io.read_file(p)
    assert a.shape == (1659, 298)
    assert list(a.obs_names[:3]) == samples[:3] and list(a.var_names[:2]) == mirnas[:2]
    reason = a.uns["exprssl"]["orientation"]
    assert reason == (
        "samples in rows: its rows are named by TCGA barcodes and its columns are named by "
        "miRNA names"
    )
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert io.summarize(a)["orientation"] == reason
    # the same table the other way round (genes x samples) is read the same
    q = tmp_path / "mirna_t.csv"
    pd.read_csv(p, index_col=0).T.to_csv(q, index_label="mirna")
    b = io.read_file(q)
    assert b.shape == (1659, 298) and b.uns["exprssl"]["orientation"].startswith("genes in rows")
    np.testing.assert_array_equal(a.X, b.X)


@pytest.mark.parametrize(
    "rows, cols, genes_in_rows, why",
    [
        # one axis named by gene ids is enough, whichever axis is longer
        (["TP53", "BRCA1", "EGFR", "MYC"], [f"S{i}" for i in range(9)], True, "gene symbols"),
        (["1000_at", "1001_at", "1002_s_at"], [f"p{i}" for i in range(5)], True, "probe ids"),
        ([f"ENSG{i:011d}" for i in range(3)], [f"x{i}" for i in range(5)], True, "Ensembl"),
        # or by sample accessions
        ([f"GSM{i}" for i in range(100, 112)], [f"feat{i}" for i in range(5)], False, "GEO"),
        ([f"SRR{i}" for i in range(1000000, 1000012)], [f"f{i}" for i in range(5)], False, "SRA"),
    ],
)
def test_orientation_from_gene_or_sample_ids(tmp_path, rows, cols, genes_in_rows, why):
    rng = np.random.default_rng(1)
    p = tmp_path / "t.csv"
    pd.DataFrame(rng.poisson(9, (len(rows), len(cols))), index=rows, columns=cols).to_csv(p)
    a = io.read_file(p)
    expected = (len(cols), len(rows)) if genes_in_rows else (len(rows), len(cols))
    assert a.shape == expected
    reason = a.uns["exprssl"]["orientation"]
    assert reason.startswith("genes in rows" if genes_in_rows else "samples in rows")
    assert why in reason


def test_orientation_falls_back_to_the_longer_axis_when_names_contradict(tmp_path):
    """Gene symbols on both axes say nothing: the longer-axis rule, and its reason."""
    p = tmp_path / "both.csv"
    pd.DataFrame(
        np.ones((3, 4)), index=["TP53", "EGFR", "MYC"], columns=["KRAS", "NRAS", "BRAF", "PTEN"]
    ).to_csv(p)
    a = io.read_file(p)
    assert a.shape == (3, 4)
    assert "the longer axis taken as genes" in a.uns["exprssl"]["orientation"]


def test_explicit_orientation_is_the_reason(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame(np.ones((3, 5)), index=["TP53", "EGFR", "MYC"]).to_csv(p)
    a = io.read_file(p, orientation="samples_in_rows")
    assert a.shape == (3, 5)
    assert a.uns["exprssl"]["orientation"] == "samples in rows: --orientation samples_in_rows"


def test_a_few_negative_cells_in_counts_warn(caplog):
    from exprssl.scale import guess_scale

    X = np.random.default_rng(0).poisson(150, (30, 60)).astype(np.float32)
    assert guess_scale(X) == "counts"
    X[4, 7] = -3
    with caplog.at_level("WARNING", logger="exprssl"):
        assert (
            guess_scale(
                X,
                source="good.csv",
                samples=[f"S{i}" for i in range(30)],
                genes=[f"G{i}" for i in range(60)],
            )
            == "standardized"
        )
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.getMessage() == (
        "good.csv: 1 negative value (first -3 at sample S4, gene G7) in data that otherwise look "
        "like raw counts, so the whole matrix is treated as already standardised (no CPM, no "
        "log2); fix those cells, or set the preprocessing options library_size and log explicitly"
    )
    caplog.clear()
    X[0, :3] = -1.5  # still few, and TPM-like once non-integer
    X[0, 3] += 0.5
    with caplog.at_level("WARNING", logger="exprssl"):
        guess_scale(X)
    assert "data: 4 negative values (first -1.5 at sample 0, gene 0)" in caplog.text
    assert "linear-scale values (TPM/FPKM)" in caplog.text
    caplog.clear()
    Z = (
        np.random.default_rng(1).standard_normal((30, 60)).astype(np.float32)
    )  # z-scores: no warning
    with caplog.at_level("WARNING", logger="exprssl"):
        assert guess_scale(Z) == "standardized"
        assert guess_scale(np.log2(X.clip(0) + 1)) == "log"
    assert not caplog.records


def test_one_negative_cell_is_found_beyond_the_strided_sample():
    from exprssl.scale import guess_scale

    X = np.random.default_rng(0).poisson(150, (400, 1000)).astype(np.float32)
    X[123, 457] = -1
    assert guess_scale(X, max_check=1000) == "standardized"


def test_info_summary_warns_naming_the_file(tmp_path, caplog):
    frame = pd.DataFrame(
        np.random.default_rng(0).poisson(150, (30, 60)),
        index=[f"S{i}" for i in range(30)],
        columns=[f"G{i}" for i in range(60)],
    )
    frame.iloc[2, 5] = -7
    p = tmp_path / "neg.csv"
    frame.to_csv(p, index_label="sample")
    with caplog.at_level("WARNING", logger="exprssl"):
        assert io.summarize(io.read_file(p))["scale"] == "standardized"
    assert f"{p}: 1 negative value (first -7 at sample S2, gene G5)" in caplog.text


# ----------------------------------------------------------------------------- sample sheets
def test_sheet_variants_and_duplicate_rows(tmp_path):
    a = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    a.obs_names = ["s1", "s2", "s3"]
    rnames = (
        tmp_path / "r.csv"
    )  # R write.csv: unnamed id column; a repeated identical row is harmless
    rnames.write_text('"","tissue"\n"s1","lung"\n"s3","skin"\n"s1","lung"\n')
    out = io.add_labels(a, rnames)
    assert list(out.obs["tissue"].fillna("NA")) == ["lung", "NA", "skin"]
    conflict = tmp_path / "c.tsv"
    conflict.write_text("id\ttissue\ns1\tlung\ns1\tliver\n")
    with pytest.raises(
        LabelColumnError,
        match=r"c\.tsv: sample id 's1' has 2 different values in column "
        r"'tissue' \('lung', 'liver'\)",
    ):
        io.add_labels(a, conflict)
    assert (
        "tissue" not in io.add_labels(a, conflict, columns=["id"]).obs.columns
    )  # nothing to disagree on


def test_sheet_conflicts_at_tcga_patient_level_name_the_match(expr):
    sheet = pd.DataFrame(
        {
            "id": ["TCGA-A1-A0SD-01A", "TCGA-A1-A0SD-11A"],
            "type": ["tumour", "normal"],
            "stage": ["II", "II"],
        }
    )
    with pytest.raises(
        LabelColumnError,
        match=r"labels: sample id 'TCGA-A1-A0SD' \(as compared by "
        r"match='tcga_patient'\) has 2 different values in column 'type'",
    ):
        io.add_labels(expr, sheet, match="tcga_patient")
    out = io.add_labels(
        expr, sheet, match="tcga_patient", columns=["id", "stage"]
    )  # consistent columns join
    assert list(out.obs["stage"].fillna("NA")) == ["NA", "II", "II", "NA"]


def test_decode_strings():
    assert list(io.decode_strings(np.array([b"G1", b"ENSG1"]))) == ["G1", "ENSG1"]
    assert list(io.decode_strings(np.array([b"x", "y"], dtype=object))) == ["x", "y"]
    assert all(type(s) is str for s in io.decode_strings(np.array([b"a"])))
    with pytest.raises(DataFileError, match="f.h5: ids are not UTF-8 text"):
        io.decode_strings(np.array([b"\xff"]), "f.h5")


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    p = tmp_path / "locked.csv"
    p.write_text("sample,G0\nS0,1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    import exprssl.readers.base as readers_base  # where every file is checked before it is read

    monkeypatch.setattr(
        readers_base, "open", denied, raising=False
    )  # as root, chmod 000 would not stop a read
    with pytest.raises(DataFileError, match=r"locked\.csv: cannot be read \(Permission denied\)"):
        io.read_file(p)


@pytest.mark.parametrize(
    "sep, cells, expected",
    [
        # European exports: '.' groups thousands where a cell shows it for certain
        (
            ";",
            ["1.523", "12.034.567", "523,25", "7", "2.000,5"],
            [1523, 12034567, 523.25, 7, 2000.5],
        ),
        (";", ["1.523", "2.401", "523,25", "7", "12"], [1523, 2401, 523.25, 7, 12]),
        # a decimal point as usual: a value below one, or other decimals, says so
        (";", ["1.523", "0.401", "7", "12", "3.000"], [1.523, 0.401, 7, 12, 3]),
        (";", ["1,5", "2,25", "7", "12", "0,5"], [1.5, 2.25, 7, 12, 0.5]),
        # a tab table of 3-decimal values stays decimal
        ("\t", ["1.523", "2.401", "7", "12", "3.000"], [1.523, 2.401, 7, 12, 3]),
    ],
)
def test_thousands_separators_in_european_tables(tmp_path, sep, cells, expected):
    """Issue 28: `1.523` in a semicolon table with thousands separators was read as 1.523."""
    path = tmp_path / ("t.csv" if sep == ";" else "t.tsv")
    genes = [f"G{i}" for i in range(5)]
    rows = [sep.join([f"S{j}", *cells]) for j in range(4)]
    path.write_text(sep.join(["sample", *genes]) + "\n" + "\n".join(rows) + "\n")
    a = exprssl.read_file(path, orientation="samples_in_rows")
    np.testing.assert_allclose(a.X[0], expected, rtol=1e-6)


def test_digits_that_may_be_grouped_or_decimal_are_refused_in_a_semicolon_table(tmp_path):
    path = tmp_path / "t.csv"
    rows = [";".join([f"S{j}", "1.523", "2.401", "7", "12"]) for j in range(4)]
    path.write_text("sample;A;B;C;D\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFileError, match="'1.523' could have a thousands separator"):
        exprssl.read_file(path, orientation="samples_in_rows")
