"""Positive and negative controls: the benchmark finds an SSL advantage that is known to be there,
and no phantom one where the labels are independent of the expression.

The data are ``latent_programmes``: a few latent programmes drive correlated genes through
negative-binomial noise; the label is a function of the programmes (positive control) or a
shuffle of it (negative control). Half the profiles are unlabeled: they pretrain. With one label
per class, a model that recovered the programmes from the unlabeled profiles must beat logistic
regression on the raw genes and the random-init encoder, outside the paired interval.
"""

from __future__ import annotations

import numpy as np
import pytest

from exprssl.datasets import latent_programmes
from exprssl.evaluation.protocol import BenchmarkConfig, run_benchmark
from exprssl.evaluation.schema import Layout
from exprssl.evaluation.stats import paired_difference
from exprssl.io import write_h5ad

SMALLEST = 0.008  # one labelled sample per class (of ~110 training profiles each)


def _run(tmp_path_factory, labels: str):
    a = latent_programmes(labels=labels, unlabeled_fraction=0.5, seed=0)
    path = tmp_path_factory.mktemp(labels) / "cohort.h5ad"
    write_h5ad(a, path)
    cfg = BenchmarkConfig(
        data=str(path),
        label="label",
        out=str(path.parent / "bench"),
        methods=["scarf"],
        baselines=["logreg", "random_encoder"],
        fractions=[SMALLEST, 0.07],
        splits=5,
        seeds=1,
        split={"train": 0.6, "test": 0.4},
        attributions=False,
        epochs=20,
        batch_size=128,
        encoder={"hidden_dims": [256, 256], "dropout": 0.2},
        bootstrap=1000,
    )
    return run_benchmark(cfg, progress=False)


@pytest.fixture(scope="module")
def positive(tmp_path_factory):
    return _run(tmp_path_factory, "structured")


@pytest.fixture(scope="module")
def negative(tmp_path_factory):
    return _run(tmp_path_factory, "random")


def _predictions(run):
    import pandas as pd

    return pd.read_parquet(Layout(run.out).predictions)


def _table(run):
    """What the note quotes: approach x fraction, mean [interval], paired difference and verdict."""
    cols = [
        "fraction",
        "n_labelled",
        "approach",
        "mean",
        "lo",
        "hi",
        "vs",
        "diff",
        "diff_lo",
        "diff_hi",
        "verdict",
    ]
    return run.summary[cols].round(3).to_string(index=False)


def test_unlabeled_profiles_pretrain(positive):
    n_unlabeled = int(latent_programmes(unlabeled_fraction=0.5, seed=0).obs["label"].isna().sum())
    assert 600 < n_unlabeled < 900
    pool = positive.manifest.pool
    assert pool.parts["profiles without the label"] == n_unlabeled
    assert pool.size == n_unlabeled + pool.parts["labelled training profiles, without their labels"]
    assert positive.manifest.full_labels.mean == pytest.approx(0.6 * (1500 - n_unlabeled), abs=3)


@pytest.mark.slow
def test_positive_control_ssl_beats_raw_genes_and_the_random_encoder(positive):
    s = positive.summary
    at = s[np.isclose(s["fraction"], SMALLEST)]
    assert (at["n_labelled"] == 4).all()  # one per class
    best = at[at["best_ssl"]].iloc[0]
    print(_table(positive))
    assert best["vs"] == "logreg" and best["verdict"] == "SSL better", best.to_dict()
    preds = _predictions(positive)
    scarf = (
        at[at["method"] == "scarf"].sort_values("mean").iloc[-1]["approach"]
    )  # SCARF's better head
    for ssl in {best["approach"], scarf}:
        for control in ("logreg", "random_encoder"):
            diff, lo, hi = paired_difference(
                preds, SMALLEST, ssl, control, n_classes=4, n_boot=1000
            )
            assert lo > 0.05, (ssl, control, diff, lo, hi)


@pytest.mark.slow
def test_negative_control_finds_no_difference(negative):
    s = negative.summary
    print(_table(negative))
    assert (s.loc[s["best_ssl"], "verdict"] == "no detectable difference").all(), s[
        s["best_ssl"]
    ].to_dict()
    assert s["mean"].between(0.25 - 0.07, 0.25 + 0.07).all(), s[
        ["approach", "fraction", "mean"]
    ]  # chance
