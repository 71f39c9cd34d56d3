"""Gene attributions: exact on models whose answer is known, and a control on planted programmes.

On ``latent_programmes`` the structured label is a function of four label programmes, each
driving 20 of the 500 genes: the top genes an approach finds per class should be those 80
driver genes (chance: 16%). For a shuffled label nothing drives it, and the top genes found on
different splits should disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from exprssl import Preprocessor, SSLModel
from exprssl.attributions import (
    COLUMNS,
    attribution_table,
    explain,
    integrated_gradients,
    logistic_weights,
    overlap,
    pca_gene_weights,
    precision_at_k,
    stability,
    train_network,
    write_attributions,
)
from exprssl.datasets import latent_programmes
from exprssl.encoders import MLPEncoder
from exprssl.errors import ConfigError, LabelColumnError, OutputPathError
from exprssl.evaluation.heads import HeadRecipe

K = 20
STEPS = 16  # integrated-gradients points: enough for ranks, half the default's time


# ----------------------------------------------------------------------------- exactness
def test_integrated_gradients_of_a_linear_network_are_input_times_weight():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 7)).astype(np.float32)
    y = np.arange(50) % 3
    lin = nn.Linear(7, 3)
    W = lin.weight.detach().numpy()
    got = integrated_gradients(lin, X, 3, y, batch_size=8)  # several batches per class
    expected = np.stack([np.abs(X[y == c] * W[c]).mean(0) for c in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    signed = integrated_gradients(lin, X, 3, samples="all", signed=True)
    np.testing.assert_allclose(signed, (X.mean(0)[None] * W), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_are_complete_through_an_encoder():
    """Signed attributions of each row add up to logit(row) - logit(mean profile)."""
    torch.manual_seed(0)
    net = nn.Sequential(MLPEncoder(30, [16, 16], 0.2), nn.Linear(16, 2)).eval()
    x = np.random.default_rng(1).normal(size=(1, 30)).astype(np.float32)
    a = integrated_gradients(net, x, 2, samples="all", signed=True, n_steps=64)
    with torch.no_grad():
        diff = (net(torch.from_numpy(x)) - net(torch.zeros(1, 30)))[0].numpy()
    np.testing.assert_allclose(a.sum(1), diff, rtol=0.02, atol=1e-3)
    proba = integrated_gradients(net, x, 2, samples="all", signed=True, target="probability")
    np.testing.assert_allclose(proba.sum(1).sum(), 0, atol=1e-3)  # probabilities sum to one


def test_logistic_weights_reproduce_sklearn_and_pca_maps_back_to_genes():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6)) * [1, 2, 3, 1, 1, 5] + 3
    for n_classes in (2, 3):
        y = np.arange(80) % n_classes
        clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        W, b = logistic_weights(clf, n_classes)
        proba = torch.softmax(torch.as_tensor(X @ W.T + b), -1).numpy()
        np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    pca = PCA(4).fit(X)
    S = pca.transform(X)
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(S[:, :3], y)
    Ws, _ = logistic_weights(clf, 3)
    G = pca_gene_weights(Ws, pca.components_)
    assert G.shape == (3, 6)
    np.testing.assert_allclose((X - X.mean(0)) @ G.T, S[:, :3] @ Ws.T, atol=1e-4)  # the same logits


def test_table_ranks_stability_and_overlap():
    genes, classes = [f"g{i}" for i in range(6)], ["a", "b"]
    v = np.array([[0.1, -0.9, 0.5, 0.0, 0.3, 0.2], [1, 2, 3, 4, 5, 6]], dtype=float)
    t = attribution_table(v, genes, classes, "net", split=0)
    assert list(t.columns) == COLUMNS and len(t) == 12
    assert t[t["class"] == "a"].set_index("gene")["rank"].to_dict() == {
        "g0": 5,
        "g1": 1,
        "g2": 2,
        "g3": 6,
        "g4": 3,
        "g5": 4,
    }
    same = attribution_table(v, genes, classes, "net", split=1)
    reversed_ = attribution_table(v[:, ::-1], genes, classes, "net", split=1)
    s = stability(pd.concat([t, same]), k=2)
    assert (
        (s["spearman"] == 1).all() and (s["jaccard_top2"] == 1).all() and (s["n_splits"] == 2).all()
    )
    s = stability(pd.concat([t, reversed_]), k=2).set_index("class")
    assert s.loc["b", "spearman"] == pytest.approx(-1) and s.loc["b", "jaccard_top2"] == 0
    ref = attribution_table(v[:, [1, 0, 2, 3, 4, 5]], genes, classes, "logreg", split=0)
    o = overlap(pd.concat([t, ref]), "logreg", k=2).set_index("class")["overlap_top2_logreg"]
    assert o["a"] == 0.5 and o["b"] == 1.0  # class a: g1 and g2 vs g0 and g2
    p = precision_at_k(t, ["g5", "g4"], k=2).set_index("class")["precision"]
    assert p["a"] == 0 and p["b"] == 1


def test_write_attributions_follows_the_output_rules(tmp_path):
    t = attribution_table(np.ones((2, 3)), ["x", "y", "z"], ["a", "b"], "logreg")
    user = tmp_path / "mine.csv"
    user.write_text("gene,score\nx,1\n")
    with pytest.raises(OutputPathError, match="not an exprssl attributions table"):
        write_attributions(t, user)
    assert user.read_text() == "gene,score\nx,1\n"
    out = tmp_path / "sub" / "attributions.csv"
    write_attributions(t, out)
    assert pd.read_csv(out).shape == (6, 7) and set(pd.read_csv(out)["fraction"]) == {1.0}
    with pytest.raises(OutputPathError, match="--overwrite"):
        write_attributions(t, out)
    write_attributions(t.head(2), out, overwrite=True)
    assert len(pd.read_csv(out)) == 2
    dev = tmp_path / "dev.csv"  # a 0.3 development build's table: no fraction column
    t.drop(columns="fraction").to_csv(dev, index=False)
    write_attributions(t, dev, overwrite=True)
    assert list(pd.read_csv(dev).columns) == list(t.columns)
    with pytest.raises(ConfigError, match="samples must be"):
        integrated_gradients(nn.Linear(3, 2), np.zeros((2, 3)), 2, samples="some")


# ----------------------------------------------------------------------------- the control
def _cohort(labels: str = "structured"):
    """1,000 profiles, 400 labelled (the unlabeled ones only pretrain), 500 genes, 80 drivers."""
    a = latent_programmes(
        n_samples=1000,
        n_genes=500,
        genes_per_programme=20,
        unlabeled_fraction=0.6,
        labels=labels,
        seed=0,
    )
    drivers = a.var_names[a.var["drives_label"].to_numpy()]
    return a, list(drivers)


@pytest.fixture(scope="module")
def scarf():
    a, _ = _cohort()
    return SSLModel(
        "scarf",
        epochs=15,
        batch_size=128,
        progress=False,
        method_params={"hidden_dims": [128, 128], "dropout": 0.1},
    ).fit(a)


def _precision(table, drivers) -> pd.Series:
    p = precision_at_k(table, drivers, K)
    return p.groupby("approach")["precision"].mean()


def test_latent_programmes_record_their_driver_genes():
    a, drivers = _cohort()
    assert (
        len(drivers) == 80
    )  # 4 label programmes x 20 genes; the nuisance programme drives no label
    assert a.uns["exprssl"]["label_programmes"] == [
        "programme_0",
        "programme_1",
        "programme_2",
        "programme_3",
    ]
    assert set(a.var.loc[drivers, "programme"]) == set(a.uns["exprssl"]["label_programmes"])
    assert ((a.var["loading"] != 0) == (a.var["programme"] != "background")).all()
    r, none = _cohort("random")
    assert none == [] and r.uns["exprssl"]["label_programmes"] == []


def test_control_top_genes_are_the_label_programmes_genes(scarf):
    a, drivers = _cohort()
    a = a[a.obs["label"].notna().to_numpy()]
    X = Preprocessor().fit_transform(a)
    y = a.obs["label"].cat.codes.to_numpy()
    assert len(y) == 397
    classes = list(a.obs["label"].cat.categories)
    torch.manual_seed(0)
    mlp = train_network(
        MLPEncoder(X.shape[1], [128, 128], 0.1),
        X,
        y,
        4,
        recipe=HeadRecipe(epochs=15, batch_size=64, encoder_lr=None),
        seed=0,
    )
    tables = [
        attribution_table(
            integrated_gradients(mlp, X, 4, y, n_steps=STEPS), a.var_names, classes, "mlp"
        ),
        explain(scarf, a, "label", n_steps=STEPS),
    ]
    table = pd.concat(tables)
    precision = _precision(table, drivers)
    shared = overlap(table, "logreg", K).groupby("approach")[f"overlap_top{K}_logreg"].mean()
    print(
        f"\nprecision at {K} (chance 0.16):",
        precision.round(3).to_dict(),
        f"\nshare of the top {K} also in logreg's:",
        shared.round(3).to_dict(),
    )
    assert (shared > 0.45).all()  # they agree with the linear model mostly through the driver genes
    assert precision["logreg"] > 0.8
    assert precision["mlp"] > 0.7
    assert precision["scarf+linear_probe"] > 0.6


def test_control_shuffled_label_top_genes_are_not_stable(scarf):
    stable = {}
    for labels in ("structured", "random"):
        a, _ = _cohort(labels)
        s = stability(explain(scarf, a, "label", splits=3, n_steps=8), K)
        stable[labels] = s.groupby("approach")[["spearman", f"jaccard_top{K}"]].mean()
        print(f"\n{labels} label, stability across 3 splits:\n{stable[labels].round(3)}")
    for approach in ("logreg", "scarf+linear_probe"):
        assert stable["structured"].loc[approach, f"jaccard_top{K}"] > 0.4
        assert stable["random"].loc[approach, f"jaccard_top{K}"] < 0.2
    assert stable["random"].loc["logreg", "spearman"] < 0.5


# ----------------------------------------------------------------------------- the command
def test_explain_command_writes_the_table_and_refuses_a_users_file(tmp_path):
    from typer.testing import CliRunner

    from exprssl.cli import app
    from exprssl.io import write_h5ad

    a = latent_programmes(n_samples=200, n_genes=300, genes_per_programme=20, seed=1)
    sheet = tmp_path / "samples.csv"
    pd.DataFrame({"sample": a.obs_names, "state": a.obs["label"].astype(str)}).to_csv(
        sheet, index=False
    )
    del a.obs["label"]
    data = tmp_path / "cohort.h5ad"
    write_h5ad(a, data)
    model = tmp_path / "model"
    SSLModel("scarf", epochs=2, progress=False, method_params={"hidden_dims": [32]}).fit(a).save(
        model
    )
    out = tmp_path / "attributions.csv"
    by_path = explain(
        model, data, pd.read_csv(sheet)["state"].to_numpy(), baseline=False, n_steps=4
    )
    assert len(by_path) == 300 * 4 and set(by_path["approach"]) == {"scarf+linear_probe"}
    runner = CliRunner()

    def run(*args):
        return runner.invoke(
            app,
            [
                "explain",
                "--model",
                model,
                "--data",
                data,
                "--labels",
                sheet,
                "--label",
                "state",
                *map(str, args),
            ],
            catch_exceptions=False,
        )

    r = run("--out", out, "--top", 5, "--splits", 2)
    assert r.exit_code == 0, r.output
    print(r.output)
    t = pd.read_csv(out)
    assert (
        list(t.columns) == COLUMNS and len(t) == 300 * 4 * 2 * 2
    )  # genes x classes x approaches x splits
    assert set(t["approach"]) == {"scarf+linear_probe", "logreg"}
    assert (
        "top 5 genes per class" in r.output
        and "over 2 splits" in r.output
        and "class_3" in r.output
        and "Jaccard" in r.output
    )
    assert (
        t.query("approach == 'logreg' and split == 0 and `class` == 'class_0' and rank == 1")[
            "gene"
        ].iloc[0]
        in r.output
    )
    r = run("--out", out)
    assert r.exit_code == 2 and "--overwrite" in r.output and len(pd.read_csv(out)) == 4800
    assert run("--out", out, "--overwrite").exit_code == 0 and len(pd.read_csv(out)) == 300 * 4 * 2
    mine = tmp_path / "mine.csv"
    mine.write_text("gene\nx\n")
    r = run("--out", mine)
    assert r.exit_code == 2 and "never replaces" in r.output and mine.read_text() == "gene\nx\n"
    r = run("--head", "svm")
    assert r.exit_code == 2 and "--head one of linear_probe, finetune" in r.output
    r = runner.invoke(
        app, ["explain", "--model", str(model), "--data", str(data), "--label", "state"]
    )
    assert r.exit_code == 2 and "label column 'state' not found" in r.output  # no sheet given
    assert len(r.output.strip().splitlines()) == 1


def test_explain_through_a_fine_tuned_encoder():
    a = latent_programmes(n_samples=200, n_genes=300, genes_per_programme=20, seed=1)
    model = SSLModel("scarf", epochs=2, progress=False, method_params={"hidden_dims": [32]}).fit(a)
    t = explain(
        model,
        a,
        a.obs["label"].to_numpy(),
        head="finetune",
        baseline=False,
        n_steps=8,
        recipe=HeadRecipe(epochs=3),
    )
    assert (
        set(t["approach"]) == {"scarf+finetune"}
        and len(t) == 300 * 4
        and t["attribution"].ge(0).all()
    )
    with pytest.raises(ConfigError, match="head must be one of"):
        explain(model, a, "label", head="svm")
    with pytest.raises(
        LabelColumnError, match="class 'class_0' has 1 samples, fewer than the 3 splits"
    ):
        explain(
            model,
            a,
            np.where(a.obs["label"] == "class_0", None, a.obs["label"]).astype(object).tolist()[:-1]
            + ["class_0"],
            splits=3,
        )


# ----------------------------------------------------------------------------- the report
def test_the_report_says_why_an_approach_has_no_gene_table(tmp_path):
    """A registered baseline that cannot be attributed gets one line with its reason in the
    report's attributions section, beside the gene table or without one."""
    from exprssl.evaluation.attribution_stage import not_attributable
    from exprssl.evaluation.baselines import BASELINES, Baseline, register
    from exprssl.evaluation.schema import AttributionInfo, Layout, Manifest
    from exprssl.report.blocks import render_markdown
    from exprssl.report.sections import _attributions_section

    before = dict(BASELINES)
    try:

        @register("sealed_vote")
        class SealedVote(Baseline):
            why_not = "its committee's votes are sealed"

        reasons = not_attributable(["scarf+linear_probe", "sealed_vote", "logreg", "xgboost"])
    finally:
        BASELINES.clear()
        BASELINES.update(before)
    assert list(reasons) == ["sealed_vote", "xgboost"]
    manifest = Manifest(attributions=AttributionInfo(fraction=1.0, not_attributable=reasons))

    def section() -> str:
        blocks = _attributions_section(pd.DataFrame(), manifest, "balanced_accuracy", tmp_path, {})
        return render_markdown(blocks)

    without_table = section()
    table = attribution_table(np.eye(2, 3), ["g1", "g2", "g3"], ["a", "b"], "logreg")
    table.to_csv(Layout(tmp_path).attributions, index=False)
    with_table = section()
    for md in (without_table, with_table):
        assert "Genes carrying the prediction" in md
        lines = [x for x in md.splitlines() if "has no gene table" in x]
        assert lines[0] == "- sealed\\_vote has no gene table: its committee's votes are sealed."
        assert len(lines) == 2 and lines[1].startswith("- xgboost has no gene table: a tree")
    assert "| a | logreg | g1, g2, g3 |" in with_table and "| logreg |" not in without_table
