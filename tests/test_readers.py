"""The reader registry: a format is one module registering itself (the Salmon / kallisto directory
reader shows it), every entry point dispatches through it, and the 0.3 names still work, warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exprssl
from exprssl import readers
from exprssl.errors import DataFileError, NonNumericError, UnknownFormatError
from exprssl.readers.tables import frame_matrix
from exprssl.store import ExpressionStore, convert

TRANSCRIPTS = ["ENST00000000001.2", "ENST00000000002.1", "ENST00000000003.4"]


def _salmon(root: Path, samples: dict[str, list[float]], name="quant.sf", ids=TRANSCRIPTS):
    for sample, counts in samples.items():
        (root / sample).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "Name": ids,
                "Length": 1000,
                "EffectiveLength": 800.0,
                "TPM": 1.0,
                "NumReads": counts,
            }
        ).to_csv(root / sample / name, sep="\t", index=False)


def test_a_salmon_directory_reads_as_one_matrix_and_converts(tmp_path):
    quant = tmp_path / "salmon"
    _salmon(quant, {"S2": [4.0, 0.0, 250.5], "S1": [12.0, 0.0, 150.5]})
    (quant / "multiqc").mkdir()  # not a sample: passed over
    a = exprssl.read_file(quant)
    assert a.obs_names.tolist() == ["S1", "S2"]
    assert a.var_names.tolist() == ["ENST00000000001", "ENST00000000002", "ENST00000000003"]
    np.testing.assert_array_equal(a.X, np.float32([[12, 0, 150.5], [4, 0, 250.5]]))
    assert a.uns["exprssl"]["format"] == "quant" and readers.detect_format(quant) == "quant"
    store = ExpressionStore(convert(quant, tmp_path / "s.h5ad"))  # read whole, then written
    np.testing.assert_array_equal(store.rows(np.arange(2)), a.X)
    assert store.uns["source_format"] == "quant"


def test_gene_level_salmon_and_kallisto(tmp_path):
    both = tmp_path / "both"
    _salmon(both, {"A": [1.0, 2.0, 3.0], "B": [4.0, 5.0, 6.0]})
    _salmon(both, {"A": [7.0, 8.0], "B": [9.0, 10.0]}, "quant.genes.sf", ["TP53", "ESR1"])
    a = exprssl.read_file(both)
    assert a.var_names.tolist() == ["TP53", "ESR1"] and a.X[1, 1] == 10.0
    kallisto = tmp_path / "kallisto"
    for i, sample in enumerate(["K1", "K2"]):
        (kallisto / sample).mkdir(parents=True)
        pd.DataFrame(
            {
                "target_id": TRANSCRIPTS,
                "length": 900,
                "eff_length": 700.0,
                "est_counts": i + 1.5,
                "tpm": 3.0,
            }
        ).to_csv(kallisto / sample / "abundance.tsv", sep="\t", index=False)
    assert exprssl.read_file(kallisto).X.tolist() == [[1.5] * 3, [2.5] * 3]


def test_a_bad_quantification_is_one_line_naming_its_file(tmp_path):
    quant = tmp_path / "q"
    _salmon(quant, {"S1": [1.0, 2.0, 3.0]})
    _salmon(quant, {"S2": [1.0, 2.0, 3.0]}, ids=list(reversed(TRANSCRIPTS)))
    with pytest.raises(DataFileError, match=r"S2/quant\.sf: lists other features than .*S1"):
        exprssl.read_file(quant)
    _salmon(quant, {"S2": [1.0, "many", 3.0]})
    with pytest.raises(NonNumericError, match=r"S2/quant\.sf: non-numeric value 'many'"):
        exprssl.read_file(quant)
    (quant / "S2" / "quant.sf").write_text("Name\tTPM\nX\t1\n")
    with pytest.raises(DataFileError, match=r"S2/quant\.sf: not Salmon output: no 'NumReads'"):
        exprssl.read_file(quant)
    empty = tmp_path / "empty"
    empty.mkdir()  # no quantifications: a directory where a file is expected, as before
    with pytest.raises(DataFileError, match="is a directory, expected a file"):
        exprssl.read_file(empty)
    with pytest.raises(DataFileError, match=r"empty: no sample subdirectories holding quant"):
        exprssl.read_file(empty, format="quant")  # a format named: its own message


def test_a_format_named_must_fit_and_sheets_dispatch_too(tmp_path):
    table = tmp_path / "t.h5"
    table.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(DataFileError, match=r"t\.h5: not an exprssl store"):
        exprssl.read_file(table, format="store")
    sheet = tmp_path / "s.gct"
    sheet.write_text("#1.2\n")
    with pytest.raises(
        UnknownFormatError, match="sample sheets must be csv, parquet or tsv, not gct"
    ):
        exprssl.add_labels(exprssl.datasets.load("all_leukemia"), sheet)
    assert readers.sheet_formats() == ["csv", "parquet", "tsv"]


def test_a_new_format_is_one_registered_class(tmp_path):
    """Registering a reader is all it takes for read_file and convert to read the format."""

    @readers.register("semicolon_matrix", suffixes=(".smx",))
    class SemicolonMatrix(readers.Reader):
        def read(self, path, request):
            return frame_matrix(pd.read_csv(path, sep=";", index_col=0), str(path), self.name)

    try:
        path = tmp_path / "x.smx"
        path.write_text("id;G1;G2\nS1;1;2\nS2;3;4\n")
        a = exprssl.read_file(path)
        assert a.X.tolist() == [[1, 2], [3, 4]] and a.uns["exprssl"]["format"] == "semicolon_matrix"
        assert ExpressionStore(convert(path, tmp_path / "s.h5ad")).genes == ["G1", "G2"]
    finally:
        readers.READERS.pop("semicolon_matrix")
    with pytest.raises(UnknownFormatError, match=r"x\.smx: unknown format"):
        exprssl.read_file(path)


def test_the_0_3_names_still_work_and_warn(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame([[1, 2], [3, 4]], index=["S1", "S2"], columns=["G1", "G2"]).to_csv(path)
    with pytest.warns(
        DeprecationWarning, match=r"exprssl\.read is deprecated .* exprssl\.read_file"
    ):
        a = exprssl.read(path, orientation="samples_in_rows")
    assert a.X.tolist() == [[1, 2], [3, 4]]
    with pytest.warns(DeprecationWarning, match=r"exprssl\.load_data .* exprssl\.load_dataset"):
        assert exprssl.load_data("all_leukemia").shape == (128, 12625)
    with pytest.warns(DeprecationWarning, match=r"exprssl\.align_genes .* exprssl\.reindex_genes"):
        out, report = exprssl.align_genes(a, ["G2", "G1"])
    assert out.X.tolist() == [[2, 1], [4, 3]] and report.coverage == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names are silent
        exprssl.read_file(path, orientation="samples_in_rows")
    assert "read" not in dir(exprssl) and "read_file" in dir(exprssl)
