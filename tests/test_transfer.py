"""Transfer in the benchmark: pretrained encoders given as --model (local or a hub id from the local
cache), sources of different scales pooled sensibly, degenerate approaches flagged."""

from __future__ import annotations

import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from exprssl import SSLModel
from exprssl.cli import app
from exprssl.evaluation.schema import Layout, Manifest

GENES = [f"G{i}" for i in range(40)]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FAST = {
    "finetune": {"epochs": 3, "batch_size": 16, "patience": 2},
    "bootstrap": 100,
    "tune": False,
    "jobs": 1,
    "fractions": [1.0],
    "seeds": 1,
    "splits": 2,
    "baselines": ["logreg"],
}


def _profiles(n, seed, shift=0.0, scale=1.0, genes=GENES):
    """Log2-scale profiles (~2-14) with two classes apart on the first five genes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(8, 1.5, (n, len(genes)))
    X[:, :5] += 2.0 * y[:, None]
    a = ad.AnnData((X * scale + shift).astype(np.float32))
    a.var_names, a.obs_names = list(genes), [f"s{seed}_{i}" for i in range(n)]
    return a, np.where(y == 1, "A", "B")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("cohort")
    a, y = _profiles(60, 1)
    a.write_h5ad(d / "cohort.h5ad")
    pd.DataFrame({"sample": a.obs_names, "subtype": y}).to_csv(d / "sheet.csv", index=False)
    (d / "fast.yaml").write_text(yaml.safe_dump(FAST))
    return d


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two encoders pretrained once on another pool of the same genes (m1, m2)."""
    d = tmp_path_factory.mktemp("models")
    pool, _ = _profiles(80, 7)
    for name, seed in (("m1", 0), ("m2", 1)):
        SSLModel(
            "scarf",
            epochs=2,
            batch_size=16,
            method_params={"hidden_dims": [16]},
            progress=False,
            val_fraction=0.0,
            seed=seed,
        ).fit(pool).save(d / name)
    return d


def _bench(cohort, out, *args):
    return CliRunner().invoke(
        app,
        [
            "benchmark",
            "--data",
            str(cohort / "cohort.h5ad"),
            "--labels",
            str(cohort / "sheet.csv"),
            "--label",
            "subtype",
            "--config",
            str(cohort / "fast.yaml"),
            "--out",
            str(out),
            "--no-progress",
            *map(str, args),
        ],
        catch_exceptions=False,
    )


def test_given_models_are_approaches_with_their_pretraining_in_the_report(cohort, models, tmp_path):
    out = tmp_path / "b"
    r = _bench(cohort, out, "--model", models / "m1", "--model", models / "m2", "--methods", "none")
    assert r.exit_code == 0, r.output
    results = pd.read_csv(Layout(out).results)
    assert set(results["method"]) == {"m1", "m2", "logreg"}
    summary = pd.read_csv(Layout(out).summary)
    assert {"m1+linear_probe", "m1+finetune", "m2+linear_probe", "m2+finetune"} <= set(
        summary["approach"]
    )
    assert "degenerate" in summary.columns
    assert (
        summary["best_ssl"].sum() == 1 and summary.loc[summary["best_ssl"], "verdict"].notna().all()
    )
    manifest = Manifest.read(out)
    assert set(manifest.models) == {"m1", "m2"}
    m1 = manifest.models["m1"]
    assert m1.gene_coverage == 1.0 and m1.data_sources[0]["n_profiles"] == 80
    assert m1.method == "scarf" and manifest.fingerprint["model:m1"] == m1.weights_sha256
    assert m1.input_scaling.startswith("the model's count/log steps, then each gene z-scored")
    report = (out / "report.md").read_text()
    assert "## Pretrained models" in report and "80 profiles" in report and "**m2**" in report
    # the best SSL approach is a given model: explained on its own genes and inputs
    attr = pd.read_csv(Layout(out).attributions)
    best = summary.loc[
        summary["best_ssl"] & (summary["fraction"] == summary["fraction"].max()), "approach"
    ]
    given = attr[attr["approach"] == best.iloc[0]]
    genes = (models / best.iloc[0].split("+")[0] / "genes.txt").read_text().split()
    assert (
        len(given) and set(given["gene"]) == set(genes) and np.isfinite(given["attribution"]).all()
    )
    assert set(given["split"]) == set(attr["split"])
    # a rerun resumes (same weights); changed weights are refused, naming the model
    assert (
        _bench(
            cohort, out, "--model", models / "m1", "--model", models / "m2", "--methods", "none"
        ).exit_code
        == 0
    )


def test_a_model_from_the_local_hub_cache_by_id(cohort, models, tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hub"
    root = cache / "models--org--hubmodel"
    shutil.copytree(models / "m1", root / "snapshots" / COMMIT)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "b"
    r = _bench(cohort, out, "--model", "hf://org/hubmodel", "--methods", "none")
    assert r.exit_code == 0, r.output
    summary = pd.read_csv(Layout(out).summary)
    assert {"hubmodel+linear_probe", "hubmodel+finetune"} <= set(summary["approach"])
    report = (out / "report.md").read_text()
    assert "hf://org/hubmodel" in report and "80 profiles" in report


def test_low_coverage_and_name_clashes_are_refused_in_one_line(cohort, tmp_path):
    pool, _ = _profiles(40, 3, genes=[f"G{i}" for i in range(30, 70)])  # 10 of its 40 genes shared
    SSLModel(
        "scarf",
        epochs=1,
        batch_size=16,
        method_params={"hidden_dims": [8]},
        progress=False,
        val_fraction=0.0,
    ).fit(pool).save(tmp_path / "far")
    r = _bench(cohort, tmp_path / "b", "--model", tmp_path / "far", "--methods", "none")
    assert r.exit_code == 2
    lines = [x for x in r.output.strip().splitlines() if x.startswith("exprssl: error:")]
    assert (
        len(lines) == 1 and "25.0% of its 40 genes" in lines[0] and "min_model_coverage" in lines[0]
    )
    assert not (tmp_path / "b").exists()
    shutil.copytree(tmp_path / "far", tmp_path / "scarf")
    r = _bench(cohort, tmp_path / "b", "--model", tmp_path / "scarf", "--min-model-coverage", 0.1)
    assert r.exit_code == 2 and "also an SSL method's or a baseline's" in r.output


def test_sources_of_other_scales_are_pooled_on_the_cohorts_scale(tmp_path):
    """A cohort in log2 microarray scale and a source in linear counts-like scale: per-source
    scaling puts the source on the cohort pool's scale, and fine-tuning never collapses to one
    class where the cohort's own pool does not."""
    from exprssl.evaluation.scaling import scale_pool

    a, y = _profiles(60, 1)
    src, _ = _profiles(120, 2)
    counts = np.round(2.0 ** np.asarray(src.X) * 3 + 50).astype(np.float32)  # another platform
    X, (S,) = scale_pool("standardize", np.asarray(a.X), np.arange(40), [counts], GENES)
    assert np.allclose(X, a.X)  # the cohort, already log-scale, keeps its values
    ref = np.asarray(a.X)[:40]
    assert np.allclose(S.mean(0), ref.mean(0), atol=1e-3) and np.allclose(
        S.std(0), ref.std(0), rtol=1e-3
    )
    Xq, (Sq,) = scale_pool("quantile", np.asarray(a.X), np.arange(40), [counts], GENES)
    assert np.allclose(np.sort(Sq, 1).mean(0), np.sort(Xq[:40], 1).mean(0), atol=0.2)
    import exprssl

    src_path = tmp_path / "counts.h5ad"
    ad.AnnData(
        counts, var=pd.DataFrame(index=GENES), obs=pd.DataFrame(index=[f"c{i}" for i in range(120)])
    ).write_h5ad(src_path)
    a.obs["subtype"] = y
    a.write_h5ad(tmp_path / "cohort.h5ad")
    common = {
        **FAST,
        "methods": ["scarf"],
        "epochs": 3,
        "batch_size": 32,
        "encoder": {"hidden_dims": [16], "dropout": 0.0},
    }
    runs = {}
    for name, extra in (("own", {}), ("pooled", {"pretrain_data": [str(src_path)]})):
        runs[name] = exprssl.benchmark(
            str(tmp_path / "cohort.h5ad"),
            "subtype",
            str(tmp_path / name),
            progress=False,
            report=name == "pooled",
            **common,
            **extra,
        )
    p = pd.read_parquet(Layout(tmp_path / "pooled").predictions)
    ft = p[p["approach"] == "scarf+finetune"]
    assert ft.groupby(["split", "seed"])["y_pred"].nunique().min() == 2
    manifest = Manifest.read(tmp_path / "pooled")
    assert manifest.pool.scaling.startswith("each pretraining source was z-scored per gene")
    assert "**Pooling**" in (tmp_path / "pooled" / "report.md").read_text()


def test_degenerate_approaches_are_flagged_and_never_best():
    from exprssl.evaluation.stats import summarize

    rng = np.random.default_rng(0)
    rows, preds = [], []
    y = np.arange(40) % 2
    for split in range(2):
        good = np.where(rng.random(40) < 0.85, y, 1 - y)
        for a, method, kind, head, pred in (
            ("logreg", "logreg", "baseline", "logreg", good),
            ("scarf+finetune", "scarf", "ssl", "finetune", np.zeros(40, int)),
            (
                "scarf+linear_probe",
                "scarf",
                "ssl",
                "linear_probe",
                np.where(rng.random(40) < 0.7, y, 1 - y),
            ),
        ):
            value = float(np.mean([(pred[y == c] == c).mean() for c in (0, 1)]))
            rows.append(
                {
                    "split": split,
                    "method": method,
                    "kind": kind,
                    "head": head,
                    "fraction": 1.0,
                    "n_labelled": 20,
                    "seed": 0,
                    "metric": "balanced_accuracy",
                    "value": value,
                }
            )
            preds.append(
                pd.DataFrame(
                    {
                        "split": split,
                        "seed": 0,
                        "fraction": 1.0,
                        "approach": a,
                        "test_index": np.arange(40) + 40 * split,
                        "y_true": y,
                        "y_pred": pred,
                    }
                )
            )
    summary = summarize(
        pd.DataFrame(rows),
        pd.concat(preds),
        metric="balanced_accuracy",
        n_classes=2,
        n_test_per_split=40,
        n_boot=200,
    )
    s = summary.set_index("approach")
    assert (
        s.loc["scarf+finetune", "degenerate"]
        == "predictions collapsed to one class in 2 of 2 cells"
    )
    assert s.loc["scarf+finetune", "excluded"] and s.loc["scarf+finetune", "collapsed"] == 1.0
    assert s.loc["logreg", "degenerate"] == "" and s.loc["scarf+linear_probe", "degenerate"] == ""
    assert s.loc["scarf+linear_probe", "best_ssl"] and not s.loc["scarf+finetune", "best_ssl"]
    assert s.loc["scarf+linear_probe", "verdict"] is not None
    # when every approach of a kind is flagged, the best flagged one is still compared
    only = summarize(
        pd.DataFrame(rows).query("head != 'linear_probe'"),
        pd.concat(preds).query("approach != 'scarf+linear_probe'"),
        metric="balanced_accuracy",
        n_classes=2,
        n_test_per_split=40,
        n_boot=200,
    )
    row = only.set_index("approach").loc["scarf+finetune"]
    assert row["best_ssl"] and row["degenerate"] != "" and row["verdict"] == "SSL worse"


def test_a_given_model_is_compared_with_in_cohort_pretraining_and_with_none(
    cohort, models, tmp_path
):
    """The question of someone who pretrained elsewhere: did that encoder beat the same method
    pretrained on my cohort's own pool, and beat no pretraining? Answered per fraction, paired,
    in summary.csv, the report's own section, the first screen and the terminal."""
    out = tmp_path / "t"
    r = _bench(
        cohort,
        out,
        "--model",
        models / "m1",
        "--methods",
        "scarf",
        "--epochs",
        "2",
        "--baselines",
        "logreg,mlp,random_encoder",
    )
    assert r.exit_code == 0, r.output
    s = pd.read_csv(Layout(out).summary).set_index("approach")
    probe, ft = s.loc["m1+linear_probe"], s.loc["m1+finetune"]
    assert probe["vs_in_cohort"] == "scarf+linear_probe"
    assert probe["vs_no_pretraining"] == "random_encoder"
    assert ft["vs_in_cohort"] == "scarf+finetune" and ft["vs_no_pretraining"] == "mlp"
    for row in (probe, ft):
        for suffix in ("_in_cohort", "_no_pretraining"):
            lo, d, hi = (row[f"diff{suffix}{x}"] for x in ("_lo", "", "_hi"))
            assert lo <= d <= hi
            assert row[f"verdict{suffix}"] in (
                "transfer better",
                "transfer worse",
                "no detectable difference",
                "too small for a claim",
            )
    assert s.loc[["scarf+finetune", "logreg"], "vs_in_cohort"].isna().all()
    report = (out / "report.md").read_text()
    assert "## Transfer: given models against in-cohort pretraining and none" in report
    first = report.split("\n## ")[0]
    assert "**Transfer**: m1 (pretrained on " in first
    assert "Transfer: m1 (pretrained on " in r.output  # the terminal's first screen too
    # every fraction's best SSL approach (a given model or not) has its gene table, beside the
    # baselines' (the case where only the linear baseline was explained)
    attr = pd.read_csv(Layout(out).attributions)
    best = s.reset_index()
    for f, part in best[best["best_ssl"]].groupby("fraction"):
        approach = part["approach"].iloc[0]
        mine = attr[(attr["approach"] == approach) & np.isclose(attr["fraction"], f)]
        assert len(mine) and np.isfinite(mine["attribution"]).all(), (approach, f)
