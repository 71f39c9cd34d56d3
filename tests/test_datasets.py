"""Bundled real data loads offline with the source's numbers; the synthetic generators are seeded,
and the latent-programme control's labels depend on its latent state (or, as the negative control,
do not)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from exprssl import datasets
from exprssl.errors import ConfigError, DataFileError
from exprssl.scale import guess_scale


def test_all_leukemia_matches_source():
    t = time.perf_counter()
    a = datasets.load("all_leukemia")
    assert time.perf_counter() - t < 2
    assert a.shape == (128, 12625) and a.X.dtype == np.float32
    assert 1.9 < a.X.min() < 2.1 and 14.0 < a.X.max() < 14.2
    assert a.var_names[0] == "1000_at" and a.obs_names[0] == "01005"
    assert a.obs["BT"].value_counts().to_dict() == {
        "B2": 36,
        "B3": 23,
        "B1": 19,
        "T2": 15,
        "B4": 12,
        "T3": 10,
        "B": 5,
        "T": 5,
        "T4": 2,
        "T1": 1,
    }
    assert a.obs["lineage"].value_counts().to_dict() == {"B": 95, "T": 33}
    assert a.obs["mol.biol"].value_counts().to_dict() == {
        "NEG": 74,
        "BCR/ABL": 37,
        "ALL1/AF4": 10,
        "E2A/PBX1": 5,
        "NUP-98": 1,
        "p15/p16": 1,
    }
    assert np.isclose(a.X[0, 0], 7.59732, atol=1e-5)  # expression.csv.gz: 1000_at, patient 01005
    assert a.uns["dataset"]["license"] == "Artistic-2.0"


def test_cptac_ucec_matches_source():
    a = datasets.load("cptac_ucec")
    assert a.shape == (115, 28057) and a.X.dtype == np.float32
    assert a.X.min() == 0 and np.isclose(a.X.max(), 22.61)
    assert a.var_names[0] == "A1BG" and a.obs_names[0] == "S001"
    assert np.isclose(a.X[0, 0], 4.02)  # transcriptomics_linear.cct.gz: A1BG, S001
    assert a.obs["tissue"].value_counts().to_dict() == {"Tumor": 101, "Adjacent_normal": 14}
    assert a.obs["Genomics_subtype"].value_counts().to_dict() == {
        "CNV_low": 44,
        "MSI-H": 26,
        "CNV_high": 24,
        "POLE": 7,
    }
    assert a.obs["patient"].nunique() == 101
    # every normal shares its patient with a tumour: why splits must group by patient
    normals = set(a.obs.loc[a.obs["tissue"] == "Adjacent_normal", "patient"])
    assert normals <= set(a.obs.loc[a.obs["tissue"] == "Tumor", "patient"])
    assert datasets.info("cptac_ucec")["scale"] == "log"


def test_load_returns_independent_copies():
    a = datasets.load("all_leukemia")
    a.X[:] = 0
    a.obs["extra"] = 1
    b = datasets.load("all_leukemia")
    assert b.X.max() > 14 and "extra" not in b.obs


def test_info_and_unknown():
    info = datasets.info("all_leukemia")
    assert info["n_samples"] == 128 and info["label_columns"]["mol.biol"]["BCR/ABL"] == 37
    assert info["scale"] == "log" and "Chiaretti" in info["citation"]
    assert datasets.names() == ["all_leukemia", "cptac_ucec"]
    with pytest.raises(DataFileError, match="bundled: all_leukemia"):
        datasets.load("gtex")


def test_synthetic_seeded_shapes_counts():
    a = datasets.synthetic(120, 80, 3, seed=5)
    b = datasets.synthetic(120, 80, 3, seed=5)
    c = datasets.synthetic(120, 80, 3, seed=6)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert a.shape == (120, 80) and a.X.dtype == np.float32
    assert (a.X >= 0).all() and np.array_equal(a.X, np.round(a.X))
    assert a.obs["label"].value_counts().to_dict() == {"class_0": 40, "class_1": 40, "class_2": 40}
    # groups (patients) are nested in classes
    assert (a.obs.groupby("group", observed=True)["label"].nunique() == 1).all()
    logs = datasets.synthetic(50, 40, 2, counts=False, seed=0)
    assert logs.X.min() >= 0 and logs.X.max() < 25 and not np.array_equal(logs.X, np.round(logs.X))


def test_synthetic_learnable_but_not_trivial():
    a = datasets.synthetic(1000, 2000, 4, seed=0)
    X = np.log2(a.X / a.X.sum(1, keepdims=True) * 1e6 + 1)
    y = a.obs["label"].to_numpy()
    rng = np.random.default_rng(0)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in np.unique(y)]
    )
    test = np.setdiff1d(np.arange(len(y)), train)
    acc = LogisticRegression(max_iter=3000).fit(X[train], y[train]).score(X[test], y[test])
    assert 0.45 < acc < 0.95, acc  # chance is 0.25


def _log_cpm(X):
    return np.log2(X / X.sum(1, keepdims=True) * 1e6 + 1)


def _probe_score(F, y, per_class, seed=0):
    """Balanced accuracy of standardised logistic regression trained on ``per_class`` labels per
    class."""
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    )
    test = np.setdiff1d(np.arange(len(y)), train)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(F[train], y[train])
    return balanced_accuracy_score(y[test], clf.predict(F[test]))


def test_latent_programmes_seeded_shapes_counts():
    t = time.perf_counter()
    a = datasets.latent_programmes(seed=3)
    assert time.perf_counter() - t < 3  # CI-sized: the positive control pretrains on it in seconds
    b = datasets.latent_programmes(seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.obsm["programmes"], b.obsm["programmes"])
    assert (a.obs["label"] == b.obs["label"]).all()
    assert not np.array_equal(a.X, datasets.latent_programmes(seed=4).X)

    assert (
        a.shape == (1500, 1000)
        and a.X.dtype == np.float32
        and a.obsm["programmes"].dtype == np.float32
    )
    assert a.obsm["programmes"].shape == (1500, 5)  # 4 label programmes + 1 nuisance
    assert (a.X >= 0).all() and np.array_equal(a.X, np.round(a.X)) and guess_scale(a.X) == "counts"
    lib = a.X.sum(1)
    assert (
        1.5e6 < np.median(lib) < 2.5e6 and lib.max() / lib.min() > 3
    )  # library sizes vary, as in RNA-seq
    assert list(a.obs["label"].cat.categories) == ["class_0", "class_1", "class_2", "class_3"]
    assert a.obs["label"].value_counts().min() > 300
    assert a.var["programme"].value_counts().to_dict() == {
        "background": 800,
        "programme_0": 40,
        "programme_1": 40,
        "programme_2": 40,
        "programme_3": 40,
        "nuisance_0": 40,
    }
    assert a.var_names[0] == "GENE00000" and a.obs_names[0] == "sample_0"
    assert a.uns["exprssl"]["source"] == "latent_programmes(labels=structured, seed=3)"


def test_latent_programmes_genes_follow_their_programme():
    a = datasets.latent_programmes(seed=0)
    X, z = _log_cpm(a.X), a.obsm["programmes"]
    Xc, zc = X - X.mean(0), z - z.mean(0)
    corr = (zc.T @ Xc) / np.outer(
        np.linalg.norm(zc, axis=0), np.linalg.norm(Xc, axis=0)
    )  # programmes x genes
    programme = a.var["programme"].to_numpy()
    background = np.abs(corr[:, programme == "background"])
    assert background.mean() < 0.04 and background.max() < 0.15
    for k, name in enumerate(
        ["programme_0", "programme_1", "programme_2", "programme_3", "nuisance_0"]
    ):
        own = np.abs(corr[k, programme == name])
        assert 0.25 < own.mean() < 0.7, (
            name,
            own.mean(),
        )  # correlated, but most of a gene's variance is noise


def test_latent_programmes_structured_labels_need_the_latent_state():
    a = datasets.latent_programmes(seed=0)
    y = a.obs["label"].to_numpy().astype(str)
    z = a.obsm["programmes"]
    assert _probe_score(z, y, 100) > 0.95  # the label is a (piecewise-linear) function of the state
    assert (
        _probe_score(z[:, 4:], y, 100) < 0.35
    )  # ... and not of the nuisance programme (chance 0.25)
    # the raw genes hold the answer for many labels, not for few: the gap SSL should close
    X = _log_cpm(a.X)
    assert _probe_score(X, y, 100) > 0.85
    raw, oracle = ([_probe_score(F, y, 2, seed) for seed in range(5)] for F in (X, z))
    assert np.mean(oracle) - np.mean(raw) > 0.15


def test_latent_programmes_random_labels_are_independent():
    a = datasets.latent_programmes(seed=0)
    r = datasets.latent_programmes(labels="random", seed=0)
    np.testing.assert_array_equal(a.X, r.X)  # the same counts: only the labels differ
    assert r.obs["label"].value_counts().to_dict() == a.obs["label"].value_counts().to_dict()
    assert r.uns["exprssl"]["source"] == "latent_programmes(labels=random, seed=0)"
    y = r.obs["label"].to_numpy().astype(str)
    assert _probe_score(r.obsm["programmes"], y, 100) < 0.32
    assert _probe_score(_log_cpm(r.X), y, 100) < 0.32


def test_latent_programmes_unlabeled_samples():
    full = datasets.latent_programmes(seed=0)
    a = datasets.latent_programmes(unlabeled_fraction=0.6, seed=0)
    r = datasets.latent_programmes(unlabeled_fraction=0.6, labels="random", seed=0)
    np.testing.assert_array_equal(a.X, full.X)
    missing = a.obs["label"].isna().to_numpy()
    assert 0.55 < missing.mean() < 0.65
    np.testing.assert_array_equal(
        missing, r.obs["label"].isna().to_numpy()
    )  # the same unlabeled samples
    assert (a.obs["label"][~missing] == full.obs["label"][~missing]).all()
    assert list(a.obs["label"].cat.categories) == ["class_0", "class_1", "class_2", "class_3"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"unlabeled_fraction": 1.0}, r"unlabeled_fraction must be in \[0, 1\), got 1.0"),
        ({"labels": "shuffled"}, "labels must be one of structured, random, got 'shuffled'"),
        ({"n_classes": 1}, "need n_classes >= 2"),
        ({"n_genes": 100}, "5 programmes x 40 genes do not fit in n_genes=100"),
        ({"n_programmes": 0}, "need n_programmes >= 1"),
    ],
)
def test_latent_programmes_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        datasets.latent_programmes(**kwargs)
    assert "\n" not in str(err.value)
