"""`exprssl benchmark --data TABLE --labels SHEET --label L` on the tables users bring, without
extra flags: a samples-in-rows table with more samples than genes (targeted panels, miRNA), and a
featureCounts file. Tiny data and fast settings: each run takes seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from exprssl import io
from exprssl.cli import app
from exprssl.errors import LabelMatchError
from exprssl.evaluation.schema import Layout, Manifest

runner = CliRunner()
FAST = [
    "--epochs",
    "1",
    "--splits",
    "2",
    "--methods",
    "scarf",
    "--baselines",
    "logreg",
    "--seeds",
    "1",
    "--fractions",
    "1.0",
    "--no-tune",
    "--no-progress",
    "--jobs",
    "1",
]


def _cohort(n: int = 60, genes: int = 25, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Counts (samples x genes) with five genes raised in class 'a': more samples than genes."""
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * (n // 2))
    X = rng.poisson(50, (n, genes)) + (y == "a")[:, None] * (np.arange(genes) < 5) * 40
    frame = pd.DataFrame(
        X,
        index=pd.Index([f"P{i}" for i in range(n)], name="id"),
        columns=[f"G{i}" for i in range(genes)],
    )
    return frame, y


def write_feature_counts(path: Path, counts: pd.DataFrame) -> list[str]:
    """featureCounts' layout: a '#' command line, then Geneid, Chr, Start, End, Strand, Length and
    one column per BAM path (genes in rows). Returns the BAM paths."""
    bams = [f"/data/run1/{s}Aligned.sortedByCoord.out.bam" for s in counts.index]
    table = counts.T.set_axis(bams, axis=1)
    ann = pd.DataFrame(
        {"Chr": "chr1;chr1", "Start": "100;900", "End": "400;1500", "Strand": "+;+", "Length": 900},
        index=table.index,
    )
    with open(path, "w") as fh:
        fh.write(
            '# Program:featureCounts v2.0.6; Command:"featureCounts" "-a" "genes.gtf" "-o" '
            '"counts.txt"\n'
        )
        pd.concat([ann, table], axis=1).rename_axis("Geneid").to_csv(fh, sep="\t")
    return bams


def _run(tmp_path: Path, data: Path, sheet: Path) -> dict:
    out = tmp_path / "bench"
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--data",
            str(data),
            "--labels",
            str(sheet),
            "--label",
            "L",
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    assert (Layout(out).results).is_file() and (out / "report.html").is_file()
    return Manifest.read(out)


def test_benchmark_on_samples_in_rows_with_more_samples_than_genes(tmp_path):
    frame, y = _cohort()
    frame.to_csv(tmp_path / "counts.csv")
    pd.DataFrame({"id": frame.index, "L": y}).to_csv(tmp_path / "sheet.csv", index=False)
    manifest = _run(tmp_path, tmp_path / "counts.csv", tmp_path / "sheet.csv")
    assert (manifest.dataset.n_samples, manifest.dataset.n_genes) == (60, 25)
    assert manifest.dataset.classes == {"a": 30, "b": 30}


def test_benchmark_on_a_feature_counts_file(tmp_path):
    frame, y = _cohort()
    write_feature_counts(tmp_path / "counts.txt", frame)
    pd.DataFrame({"sample": frame.index, "L": y}).to_csv(tmp_path / "sheet.csv", index=False)
    manifest = _run(tmp_path, tmp_path / "counts.txt", tmp_path / "sheet.csv")
    assert (manifest.dataset.n_samples, manifest.dataset.n_genes) == (60, 25)


def test_feature_counts_read_natively(tmp_path):
    frame, _ = _cohort(n=12, genes=30)
    write_feature_counts(tmp_path / "counts.txt", frame)
    a = io.read_file(tmp_path / "counts.txt")  # no sheet: the layout says genes are in rows
    assert list(a.obs_names) == list(frame.index) and list(a.var_names) == list(frame.columns)
    np.testing.assert_array_equal(a.X, frame.to_numpy(np.float32))


@pytest.mark.parametrize("sep,decimal", [(";", ","), ("\t", ","), (";", "."), ("\t", ".")])
def test_separators_and_decimal_marks_are_sniffed(tmp_path, sep, decimal):
    """European exports (semicolons, decimal commas) read like any csv, whatever the extension."""
    frame, _ = _cohort(n=8, genes=5)
    values = frame.astype(float) / 7
    path = tmp_path / "table.csv"
    path.write_text("# exported by a spreadsheet\n" + values.to_csv(sep=sep, decimal=decimal))
    a = io.read_file(path, orientation="samples_in_rows")
    np.testing.assert_allclose(a.X, values.to_numpy(np.float32), rtol=1e-6)
    sheet = tmp_path / "sheet.txt"
    sheet.write_text(
        f"id{sep}L\n" + "".join(f"{i}{sep}{'ab'[k % 2]}\n" for k, i in enumerate(frame.index))
    )
    assert io.add_labels(a, sheet).obs["L"].tolist() == ["a", "b"] * 4


@pytest.mark.parametrize("text", ["sep=;\n{semicolons}", "{commas_cr}", "{commas_crlf}"])
def test_excel_separator_line_and_line_endings(tmp_path, text):
    """Excel's 'sep=;' first line, old Mac (CR) and Windows (CRLF) line endings."""
    frame, _ = _cohort(n=8, genes=5)
    path = tmp_path / "t.csv"
    path.write_text(
        text.format(
            semicolons=frame.to_csv(sep=";"),
            commas_cr=frame.to_csv().replace("\n", "\r"),
            commas_crlf=frame.to_csv().replace("\n", "\r\n"),
        ),
        newline="",
    )
    a = io.read_file(path, orientation="samples_in_rows")
    np.testing.assert_array_equal(a.X, frame.to_numpy(np.float32))


def test_sample_sheet_decides_the_orientation(tmp_path):
    """A square-ish or wide table is read the way round whose ids the sheet names, either way."""
    frame, y = _cohort(n=40, genes=30)
    sheet = tmp_path / "sheet.csv"
    pd.DataFrame({"id": frame.index, "L": y}).to_csv(sheet, index=False)
    for name, table in (("rows.csv", frame), ("cols.csv", frame.T)):
        table.to_csv(tmp_path / name)
        a = io.load_dataset(tmp_path / name, labels=sheet)
        assert a.shape == (40, 30) and a.obs["L"].tolist() == list(y), name
    with pytest.raises(
        LabelMatchError, match="the sheet names columns read as genes: pass --orientation"
    ):
        io.load_dataset(
            tmp_path / "rows.csv", labels=sheet, orientation="genes_in_rows"
        )  # explicit wins


ENTREZ_HEADER_CASES = {
    # (samples, genes, sample ids, gene ids, file): Entrez ids are bare numbers, which name no
    # axis by themselves; the sheet decides, also when it names as many rows as columns
    "more_samples_than_genes": (120, 60, "p{}", lambda i: str(1000 + 7 * i), "t.tsv"),
    "numeric_sample_ids": (40, 300, "{}", lambda i: str(i + 1), "t.csv"),
    "numeric_ids_more_samples": (300, 40, "{}", lambda i: str(i + 1), "t.csv"),
    "parquet_integer_columns": (120, 60, "p{}", lambda i: 1000 + 7 * i, "t.parquet"),
}


@pytest.mark.parametrize("case", sorted(ENTREZ_HEADER_CASES))
@pytest.mark.parametrize("transposed", [False, True])
def test_an_entrez_id_header_with_a_sheet_is_read_the_right_way_round(case, transposed, tmp_path):
    n, g, sample, gene, name = ENTREZ_HEADER_CASES[case]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.lognormal(2, 1, (n, g)).round(3),
        index=[sample.format(i + 1) for i in range(n)],
        columns=[gene(i) for i in range(g)],
    )
    y = rng.choice(["a", "b"], n)
    pd.DataFrame({"sample": frame.index, "L": y}).to_csv(tmp_path / "s.csv", index=False)
    table = frame.T if transposed else frame
    if name.endswith(".parquet"):
        table.to_parquet(tmp_path / name)
    else:
        table.to_csv(tmp_path / name, sep="\t" if name.endswith(".tsv") else ",")
    a = io.load_dataset(tmp_path / name, labels=tmp_path / "s.csv")
    assert a.shape == (n, g) and list(a.obs_names) == list(frame.index)
    assert a.obs["L"].tolist() == list(y)
    assert "the sample sheet names" in a.uns["exprssl"]["orientation"]


def test_ids_with_surrounding_spaces_match(tmp_path):
    frame, y = _cohort(n=20, genes=30)
    spaced = frame.copy()
    spaced.index = [f" {i} " for i in frame.index]
    spaced.to_csv(tmp_path / "t.csv")
    (tmp_path / "s.csv").write_text(
        "id,L\n" + "".join(f"{i}  ,{c}\n" for i, c in zip(frame.index, y, strict=True))
    )
    a = io.load_dataset(tmp_path / "t.csv", labels=tmp_path / "s.csv")
    assert list(a.obs_names) == list(frame.index) and a.obs["L"].tolist() == list(y)


def test_info_prints_the_orientation_and_why(tmp_path):
    """A TCGA miRNA table, profiles in rows (more profiles than miRNAs): `info` says which way
    round it read it and why, and reads it with samples in rows."""
    rng = np.random.default_rng(0)
    samples = [f"TCGA-A{i % 9}-{1000 + i}-01A" for i in range(120)]
    p = tmp_path / "mirna.csv"
    pd.DataFrame(
        rng.poisson(30, (120, 40)), index=samples, columns=[f"hsa-mir-{i}" for i in range(40)]
    ).to_csv(p)
    r = runner.invoke(app, ["info", str(p)])
    assert r.exit_code == 0, r.output
    assert f"{p}: 120 samples x 40 genes" in r.output
    assert (
        "orientation: samples in rows: its rows are named by TCGA barcodes and its columns are "
        "named by miRNA names" in r.output
    )


def test_a_table_printed_to_a_file_is_not_cut_at_80_columns(capsys):
    """A log (stdout a file) lost the summary's first fraction column: rich assumed 80 columns."""
    from rich.table import Table

    from exprssl.cli import _print_whole

    t = Table(title="x")
    columns = [f"{p}% (n={p * 10})" for p in range(10, 100, 10)]
    for c in ["approach", *columns]:
        t.add_column(c, no_wrap=True)
    t.add_row("scarf+linear_probe", *["0.812"] * len(columns))
    _print_whole(t)
    out = capsys.readouterr().out
    assert all(c in out for c in columns) and "scarf+linear_probe" in out and "…" not in out
    assert max(map(len, out.splitlines())) > 80
