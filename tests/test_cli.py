"""The `exprssl` CLI on the bundled real dataset: commands work, bad input is one line + exit 2."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from exprssl.cli import app
from exprssl.evaluation.schema import Layout, Manifest
from exprssl.methods import available

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("datasets", "info", "pretrain", "embed", "benchmark", "demo"):
        assert cmd in r.output


def test_datasets_lists_all_leukemia():
    r = run("datasets")
    assert r.exit_code == 0, r.output
    assert "all_leukemia" in r.output
    assert "128" in r.output and "12625" in r.output


def test_info_bundled_shape_and_labels():
    r = run("info", "all_leukemia")
    assert r.exit_code == 0, r.output
    assert "128 samples x 12625 probe sets" in r.output  # as `exprssl datasets` says
    assert "log" in r.output.lower()
    # molecular subtype counts from the source
    assert "BCR/ABL: 37" in r.output and "NEG: 74" in r.output


@pytest.fixture(scope="module")
def small_leukemia(tmp_path_factory):  # for the tests that need a file path
    """The real dataset cut to 400 probe sets, so every method pretrains in a second or two."""
    from exprssl.datasets import load

    a = load("all_leukemia")
    keep = np.argsort(-a.X.var(0))[:400]
    path = tmp_path_factory.mktemp("data") / "all400.h5ad"
    a[:, np.sort(keep)].copy().write_h5ad(path)
    return path


@pytest.mark.parametrize("method", available())
def test_pretrain_and_embed_every_method_on_bundled_data(tmp_path, method):
    out = tmp_path / f"model_{method}"
    r = run(
        "pretrain",
        "--method",
        method,
        "--data",
        "all_leukemia",
        "--out",
        out,
        "--epochs",
        2,
        "--batch-size",
        32,
        "--top-genes",
        400,
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    for f in (
        "config.json",
        "preprocessor.json",
        "weights.safetensors",
        "genes.txt",
        "history.csv",
    ):
        assert (out / f).is_file(), f
    assert len((out / "genes.txt").read_text().split()) == 400
    emb = tmp_path / "emb.h5ad"
    r = run("embed", "--model", out, "--data", "all_leukemia", "--out", emb)
    assert r.exit_code == 0, r.output
    res = ad.read_h5ad(emb)
    Z = res.obsm[f"X_{method}"]
    assert Z.shape == (128, 256)
    assert np.isfinite(Z).all() and Z.std() > 0
    assert "mol.biol" in res.obs.columns and list(res.obs_names[:3]) == ["01005", "01010", "03002"]


def test_pretrain_config_file_and_flag_override(tmp_path, small_leukemia):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        f"method: vime\ndata: {small_leukemia}\nout: {tmp_path / 'm'}\nepochs: 3\n"
        "batch_size: 16\nalpha: 1.5\npreprocessing:\n  top_k_variance: 100\n"
    )
    r = run("pretrain", "--config", cfg, "--epochs", 1, "--no-progress")
    assert r.exit_code == 0, r.output
    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    assert conf["method"] == "vime" and conf["method_config"]["alpha"] == 1.5
    assert conf["train_config"]["epochs"] == 1 and conf["train_config"]["batch_size"] == 16
    assert conf["n_features"] == 100
    assert len(pd.read_csv(tmp_path / "m" / "history.csv")) == 1


def _assert_one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    text = r.output
    assert "Traceback" not in text
    for n in needles:
        assert n in text, (n, text)


def test_unknown_method_is_clear(tmp_path):
    r = run("pretrain", "--method", "simclrx", "--data", "all_leukemia", "--out", tmp_path / "m")
    _assert_one_line_error(r, "simclrx", "scarf")
    assert not (tmp_path / "m").exists()


def test_missing_data_file(tmp_path):
    r = run("info", tmp_path / "nope.csv")
    _assert_one_line_error(r, "nope.csv")


def _bad_files(tmp_path):
    good = pd.DataFrame(np.arange(12.0).reshape(3, 4), index=["a", "b", "c"], columns=list("WXYZ"))
    cases = {}
    p = tmp_path / "nan.csv"
    good.assign(X=[1.0, np.nan, 2.0]).to_csv(p)
    cases["nan"] = (p, "NaN values")
    p = tmp_path / "text.csv"
    good.astype(object).assign(Y=["1", "two", "3"]).to_csv(p)
    cases["text"] = (p, "non-numeric value 'two'")
    p = tmp_path / "dups.csv"
    good.set_axis(["a", "a", "c"]).to_csv(p)
    cases["dups"] = (p, "duplicated sample ids")
    p = tmp_path / "empty.tsv"
    p.write_text("")
    cases["empty"] = (p, "file is empty")
    p = tmp_path / "data.xlsx"
    p.write_text("x")
    cases["format"] = (p, "unknown format")
    p = tmp_path / "cut.h5ad"
    ad.AnnData(good.astype(np.float32)).write_h5ad(p)
    p.write_bytes(p.read_bytes()[:300])
    cases["truncated"] = (p, "truncated or corrupt")
    return cases


@pytest.mark.parametrize("case", ["nan", "text", "dups", "empty", "format", "truncated"])
def test_bad_files_are_one_line_exit_2(tmp_path, case):
    path, needle = _bad_files(tmp_path)[case]
    r = run("info", path)
    _assert_one_line_error(r, path.name, needle)
    lines = (
        r.output.strip().splitlines()
    )  # warnings (e.g. the orientation rule for a tiny table) may precede
    assert len([x for x in lines if x.startswith("exprssl: error:")]) == 1
    assert all(x.startswith(("exprssl: error:", "exprssl: warning:")) for x in lines)


def test_bad_labels_are_one_line_exit_2(tmp_path):
    sheet = tmp_path / "sheet.csv"
    pd.DataFrame({"id": ["x1", "x2"], "subtype": ["A", "B"]}).to_csv(sheet, index=False)
    r = run("info", "all_leukemia", "--sample-sheet", sheet)
    _assert_one_line_error(r, "sheet.csv", "no sample id matches")
    r = run("benchmark", "--data", "all_leukemia", "--label", "subtype", "--out", tmp_path / "b")
    _assert_one_line_error(r, "label column 'subtype' not found")
    r = run(
        "benchmark",
        "--data",
        "all_leukemia",
        "--label",
        "mol.biol",
        "--fractions",
        "0.5,2",
        "--no-attributions",
        "--out",
        tmp_path / "b",
    )
    _assert_one_line_error(r, "2.0 is outside (0, 1]")
    r = run(  # --min-class-size 1 keeps every class: 0.3's refusal (the default runs on)
        "benchmark",
        "--data",
        "all_leukemia",
        "--label",
        "mol.biol",
        "--min-class-size",
        1,
        "--out",
        tmp_path / "b",
    )
    _assert_one_line_error(r, "class 'NUP-98' has 1 samples", "--min-class-size N")
    assert not (tmp_path / "b").exists()


def test_benchmark_sends_classes_too_small_for_the_split_to_the_pool(tmp_path):
    """The first run a newcomer tries: no --min-class-size, two 1-patient classes only pretrain
    and one warning line, the manifest and the console say so."""
    out = tmp_path / "b"
    r = run(
        "benchmark",
        "--data",
        "all_leukemia",
        "--label",
        "mol.biol",
        "--methods",
        "scarf",
        "--baselines",
        "logreg",
        "--fractions",
        "1",
        "--seeds",
        1,
        "--epochs",
        1,
        "--out",
        out,
        "--top-genes",
        300,
        "--splits",
        2,
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    t = pd.read_csv(Layout(out).attributions)  # each split's own 300 genes (kept on its pool)
    assert (t.groupby(["approach", "split", "class"]).size() == 300).all() and "logreg" in set(
        t["approach"]
    )
    manifest = Manifest.read(out)
    n = manifest.full_labels.mean  # every non-test labelled profile: 126 - 20% held out
    assert (
        n == pytest.approx(0.8 * 126, abs=2)
        and f"100% of the labels = {n:g} labelled profiles" in r.output
    )
    assert manifest.config["preprocessing"] == {"top_k_variance": 300}
    assert "top 300 genes by variance" in (out / "report.md").read_text()
    assert manifest.dataset.dropped_classes == {"NUP-98": 1, "p15/p16": 1}
    assert manifest.dataset.dropped_rule.startswith("fewer than 2 samples")
    warned = [x for x in r.stderr.splitlines() if "too small for the split" in x]
    assert len(warned) == 1 and "'NUP-98' (1 sample), 'p15/p16' (1 sample)" in warned[0]
    assert (
        "without their labels (fewer than 2 samples, one for each part of the split: train "
        "and test): NUP-98: 1, p15/p16: 1." in r.stdout
    )
    assert set(manifest.dataset.classes) == {"ALL1/AF4", "BCR/ABL", "E2A/PBX1", "NEG"}
    assert "logreg" in r.output and "scarf+finetune" in r.output


def test_missing_model_dir(tmp_path):
    r = run(
        "embed",
        "--model",
        tmp_path / "nomodel",
        "--data",
        "all_leukemia",
        "--out",
        tmp_path / "e.h5ad",
    )
    _assert_one_line_error(r, "nomodel")


def test_embed_data_without_model_genes(tmp_path, small_leukemia):
    out = tmp_path / "m"
    assert (
        run(
            "pretrain",
            "--method",
            "scarf",
            "--data",
            small_leukemia,
            "--out",
            out,
            "--epochs",
            1,
            "--no-progress",
        ).exit_code
        == 0
    )
    other = ad.AnnData(np.random.default_rng(0).normal(5, 1, (10, 50)).astype(np.float32))
    other.var_names = [f"GENE{i}" for i in range(50)]
    other.obs_names = [f"s{i}" for i in range(10)]
    path = tmp_path / "other.h5ad"
    other.write_h5ad(path)
    r = run("embed", "--model", out, "--data", path, "--out", tmp_path / "e.h5ad")
    _assert_one_line_error(r, "0.0%")
    assert not (tmp_path / "e.h5ad").exists()


def test_bad_config_key(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("method: scarf\ndata: all_leukemia\nout: x\ntemprature: 0.5\n")
    r = run("pretrain", "--config", cfg)
    _assert_one_line_error(r, "temprature")


def test_methods_lists_every_registered_method_and_its_options():
    r = run("methods")
    assert r.exit_code == 0, r.output
    for m in available():
        assert f"{m}:" in r.output
    for option in ("corruption_rate", "temperature", "alpha", "lambd", "hidden_dims"):
        assert option in r.output
    lines = r.output.splitlines()
    for m in available():  # the whole one-line summary, not a wrapped line cut mid-sentence
        [summary] = [x for x in lines if x.startswith(f"{m}: ") and "own options" not in x]
        assert summary.endswith(".") and len(summary) > len(m) + 20, summary
    assert sum("hidden_dims" in x for x in lines) == 1  # the shared options, once
    assert "shared by every method" in r.output
    r = run("methods", "scarf")  # one method: all of its options in one table
    assert "hidden_dims" in r.output and "temperature" in r.output and "shared" not in r.output
    r = run("methods", "nope")
    _assert_one_line_error(r, "unknown method 'nope'")


def test_options_lists_every_section_and_every_field(monkeypatch):
    """``exprssl options``: every options class (benchmark, training, finetune, preprocessing,
    each method), each with every one of its fields; one section alone; an unknown one named."""
    import dataclasses

    from exprssl.evaluation.config import BenchmarkConfig
    from exprssl.evaluation.heads import HeadRecipe

    monkeypatch.setenv("COLUMNS", "200")  # one table row per option
    r = run("options")
    assert r.exit_code == 0, r.output
    titles = [line.split(":")[0] for line in r.output.splitlines() if ": " in line[:20]]
    assert titles[:4] == ["benchmark", "training", "preprocessing", "finetune"]
    assert sorted(titles[4:]) == sorted(available())
    for section, cls in (("finetune", HeadRecipe), ("benchmark", BenchmarkConfig)):
        r = run("options", section)
        first = [line.split("│")[1].strip() for line in r.output.splitlines() if "│" in line]
        names = [c for c in first if c]  # a wrapped row continues with an empty first cell
        assert names == [f.name for f in dataclasses.fields(cls)]
    assert "min_test_per_class" in names and "pool_scaling" in names
    r = run("options", "nope")
    _assert_one_line_error(r, "unknown options section 'nope'; choose from barlow, benchmark")


def test_usage_errors_are_one_line_from_the_console_script(capsys):
    """click's own usage errors (unknown option or command, a missing or unparsable value) are
    one line on stderr and exit 2 through the console script, like every other bad input."""
    from exprssl.cli import main

    cases = {
        ("benchmark", "--splitz", "3"): "No such option: --splitz (Possible options: --split, "
        "--split-seed, --splits) (see 'exprssl benchmark --help')",
        ("benchmark", "--splits", "abc"): "Invalid value for '--splits'",
        ("pretrain", "--epochs"): "Option '--epochs' requires an argument "
        "(see 'exprssl pretrain --help')",
        ("nosuchcmd",): "No such command 'nosuchcmd'",
    }
    for argv, needle in cases.items():
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        out, err = capsys.readouterr()
        assert e.value.code == 2 and out == "", argv
        assert err.count("\n") == 1 and err.startswith("exprssl: error: ") and needle in err
    with pytest.raises(SystemExit) as e:
        main(["methods", "scarf"])
    assert e.value.code == 0 and "corruption_rate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "Usage: exprssl" in capsys.readouterr().out
