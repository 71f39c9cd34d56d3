"""Bundled real data loads offline with the source's numbers; the synthetic generator is seeded."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from exprssl import datasets
from exprssl.errors import DataFileError


def test_all_leukemia_matches_source():
    t = time.perf_counter()
    a = datasets.load("all_leukemia")
    assert time.perf_counter() - t < 2
    assert a.shape == (128, 12625) and a.X.dtype == np.float32
    assert 1.9 < a.X.min() < 2.1 and 14.0 < a.X.max() < 14.2
    assert a.var_names[0] == "1000_at" and a.obs_names[0] == "01005"
    assert a.obs["BT"].value_counts().to_dict() == {"B2": 36, "B3": 23, "B1": 19, "T2": 15, "B4": 12, "T3": 10,
                                                    "B": 5, "T": 5, "T4": 2, "T1": 1}
    assert a.obs["lineage"].value_counts().to_dict() == {"B": 95, "T": 33}
    assert a.obs["mol.biol"].value_counts().to_dict() == {"NEG": 74, "BCR/ABL": 37, "ALL1/AF4": 10, "E2A/PBX1": 5,
                                                          "NUP-98": 1, "p15/p16": 1}
    assert np.isclose(a.X[0, 0], 7.59732, atol=1e-5)  # expression.csv.gz: 1000_at, patient 01005
    assert a.uns["dataset"]["license"] == "Artistic-2.0"


def test_cptac_ucec_matches_source():
    a = datasets.load("cptac_ucec")
    assert a.shape == (115, 28057) and a.X.dtype == np.float32
    assert a.X.min() == 0 and np.isclose(a.X.max(), 22.61)
    assert a.var_names[0] == "A1BG" and a.obs_names[0] == "S001"
    assert np.isclose(a.X[0, 0], 4.02)  # transcriptomics_linear.cct.gz: A1BG, S001
    assert a.obs["tissue"].value_counts().to_dict() == {"Tumor": 101, "Adjacent_normal": 14}
    assert a.obs["Genomics_subtype"].value_counts().to_dict() == {"CNV_low": 44, "MSI-H": 26, "CNV_high": 24,
                                                                  "POLE": 7}
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
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), train)
    acc = LogisticRegression(max_iter=3000).fit(X[train], y[train]).score(X[test], y[test])
    assert 0.45 < acc < 0.95, acc  # chance is 0.25
