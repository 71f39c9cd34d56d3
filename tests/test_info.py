"""`exprssl info`: missing labels per column, the classes too small for the default protocol,
and the benchmark command it would run, copy-pasteable."""

from __future__ import annotations

import json
import shlex

import pytest
import typer
from bad_inputs import good_counts
from typer.testing import CliRunner

from exprssl.cli import app

runner = CliRunner()


def _info(*args):
    r = runner.invoke(app, ["info", *map(str, args)])
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def test_bundled_leukemia_says_probe_sets_missing_labels_small_classes_and_the_command():
    lines = _info("all_leukemia")
    assert lines[0] == "all_leukemia: 128 samples x 12625 probe sets"
    assert "label sex (2 classes, 125 of 128 labelled): M: 83, F: 42" in lines
    assert "label lineage (2 classes): B: 95, T: 33" in lines  # complete: said by nothing added
    assert "numeric age: 5 to 58, median 29 (123 of 128 samples)" in lines
    assert lines[-4:] == [
        "benchmark on mol.biol (the dataset's usual label; another with --label COLUMN): 128 of "
        "128 samples labelled; default protocol: 5 outer splits (train 0.8 / test 0.2), 25 test "
        "samples per split",
        "  too small for the split (fewer than 2 samples), would only pretrain: NUP-98 (1 "
        "sample), p15/p16 (1 sample)",
        "  fewer than 3 test samples per split, each moving balanced accuracy by up to 0.25: "
        "E2A/PBX1 (1), ALL1/AF4 (2)",
        "run: exprssl benchmark --data all_leukemia --label mol.biol --out all_leukemia_mol.biol",
    ]


def test_a_counts_table_and_sheet_get_the_first_label_column_and_a_quoted_command(tmp_path):
    data = tmp_path / "my counts.csv"
    good_counts(n_samples=40, n_genes=30).to_csv(data)
    subtype = ["A"] * 20 + ["B"] * 15 + ["C"] * 2 + ["D"] + [""] * 2  # 38 of 40 labelled
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,subtype,batch\n" + "".join(f"S{i},{subtype[i]},{'xy'[i % 2]}\n" for i in range(40))
    )
    lines = _info(data, "--sample-sheet", sheet)
    assert lines[0] == f"{data}: 40 samples x 30 genes"
    assert "label subtype (4 classes, 38 of 40 labelled): A: 20, B: 15, C: 2, D: 1" in lines
    assert (
        "benchmark on subtype (the first label column; another with --label COLUMN): 38 of 40 "
        "samples labelled; default protocol: 5 outer splits (train 0.8 / test 0.2), 8 test "
        "samples per split" in lines
    )
    assert (
        "  too small for the split (fewer than 2 samples), would only pretrain: D (1 sample)"
        in (lines)
    )
    assert "C (1)" in lines[-2]  # 2 samples: 1 trains, 1 tests
    command = lines[-1].removeprefix("run: ")
    assert shlex.split(command) == [
        "exprssl",
        "benchmark",
        "--data",
        str(data),
        "--label",
        "subtype",
        "--sample-sheet",
        str(sheet),
        "--out",
        "my_counts_subtype",
    ]
    # as printed, the benchmark command's parser takes it (running it is the protocol's tests')
    cli = typer.main.get_command(app)
    benchmark = cli.get_command(cli.make_context("exprssl", ["benchmark", "--help"]), "benchmark")
    options = benchmark.make_context("benchmark", shlex.split(command)[2:]).params
    assert [str(options[k]) for k in ("data", "label", "labels", "out")] == [
        str(data),
        "subtype",
        str(sheet),
        "my_counts_subtype",
    ]


def test_label_option_and_json(tmp_path):
    lines = _info("all_leukemia", "--label", "BT")
    assert (
        lines[-1] == "run: exprssl benchmark --data all_leukemia --label BT --out all_leukemia_BT"
    )
    assert lines[-3].endswith("would only pretrain: T1 (1 sample)")
    r = runner.invoke(app, ["info", "all_leukemia", "--label", "BT", "--json"])
    task = json.loads(r.stdout)["task"]
    assert task["too_small"] == {"T1": 1} and task["classes"] == 9 and task["labelled"] == 128
    assert task["few_test"] == {"T": 1, "B": 1, "T4": 1, "B4": 2, "T3": 2}
    r = runner.invoke(app, ["info", "all_leukemia", "--label", "nope"])
    assert r.exit_code == 2 and "label column 'nope' not found" in r.output


@pytest.mark.parametrize("column", ["cod", "age"])
def test_a_column_that_cannot_be_a_label_is_one_line(column):
    r = runner.invoke(app, ["info", "all_leukemia", "--label", column])
    assert r.exit_code == 2 and f"label column '{column}'" in r.output
