"""Baselines are fair controls: calibrated like a pretrained encoder, trained like fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exprssl.evaluation.features import random_encoder
from exprssl.evaluation.schema import GENES, FeatureKey


def test_random_encoder_batchnorm_matches_the_pool_at_inference():
    """Calibrated with dropout off (as at inference), each BatchNorm standardises the pool's
    activations: mean 0, variance 1 in eval mode. With dropout on during calibration the stored
    variance is inflated and eval-mode variance falls to ~(1 - p)."""
    X_pool = np.random.default_rng(0).normal(2.0, 3.0, (400, 50)).astype(np.float32)
    enc = random_encoder(50, {"hidden_dims": [32, 32], "dropout": 0.5}, X_pool, seed=0)
    assert not enc.training
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append(out.clone()))  # ReLU is in place
        for m in enc.modules()
        if isinstance(m, torch.nn.BatchNorm1d)
    ]
    with torch.no_grad():
        enc(torch.from_numpy(X_pool))
    for h in hooks:
        h.remove()
    assert len(seen) == 2
    for out in seen:
        assert out.mean(0).abs().max() < 5e-3
        np.testing.assert_allclose(
            out.var(0, unbiased=False).numpy(), 1.0, atol=0.01
        )  # running var: unbiased


def _job(y: np.ndarray, n_test: int):
    """A cell whose labelled subset is every row of ``y`` and whose test part its first rows."""
    from exprssl.evaluation.cells import GroupJob

    return GroupJob(
        split=0,
        seed=0,
        fraction=1.0,
        lab=np.arange(len(y)),
        val=np.array([], int),
        test=np.arange(n_test),
        y=y,
        n_classes=int(y.max()) + 1,
        approaches=[],
        features={},
    )


def test_xgboost_and_linear_learners_tune_on_the_labelled_subset_only(tmp_path):
    """Inner CV picks from the grid using labelled samples only: the test rows may be garbage
    (NaN) without changing the choice, and the chosen XGBoost rounds come from early stopping."""
    from exprssl.evaluation.learners import fit_linear, fit_xgboost
    from exprssl.evaluation.tuning import GRIDS, inner_folds

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 12)
    X = rng.normal(size=(36, 20)).astype(np.float32)
    X[:, 0] += 2.5 * y  # one informative gene
    job = _job(y, n_test=3)
    folds = inner_folds(y, 0)
    assert len(folds) == 3 and sorted(np.concatenate(folds).tolist()) == list(range(36))
    folds_xgb = inner_folds(y, 0, 2)
    clean, params = fit_linear(X, y, X[:3], "logistic", folds, job)
    _, same = fit_linear(X, y, np.full((3, 20), 1e6, np.float32), "logistic", folds, job)
    assert params == same and params in GRIDS["logistic"]
    assert clean.shape == (3, 3) and np.allclose(clean.sum(1), 1)
    proba, xgb = fit_xgboost(X, y, X[:3], folds_xgb, job)
    assert proba.shape == (3, 3) and 1 <= xgb["n_estimators"] <= 300
    assert {k: xgb[k] for k in ("max_depth", "min_child_weight", "learning_rate")} in GRIDS[
        "xgboost"
    ]
    # a class with one labelled sample: nothing to cross-validate, the defaults are kept
    assert (
        inner_folds(np.array([0, 0, 1, 2, 3]), 0) is None
    )  # one class to hold out: nothing to compare
    folds = inner_folds(np.array([0, 0, 1, 1, 2]), 0)
    assert len(folds) == 2 and 4 not in np.concatenate(
        folds
    )  # the single sample of class 2 always trains
    _, default = fit_linear(X[:5], np.array([0, 0, 1, 1, 2]), X[:2], "logistic", None, job)
    assert default == GRIDS["logistic"][0]


def test_xgboost_fits_see_their_own_training_rows_top_genes(monkeypatch):
    """Each XGBoost fit reads the genes of largest ANOVA F on its own training rows (inner folds
    on their training part, the final model on the labelled subset): informative genes are kept,
    constant ones rank last, held-out and test rows never choose, and with no more genes than
    the screen keeps nothing changes."""
    from exprssl.evaluation import boosting, screening
    from exprssl.evaluation.learners import fit_xgboost
    from exprssl.evaluation.tuning import inner_folds

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 16)
    X = rng.normal(size=(48, 40)).astype(np.float32)
    X[:, [3, 17, 29]] += 2.0 * y[:, None]
    X[:, 5] = 1.0  # constant: F undefined
    assert screening.screened(X, y, 3).tolist() == [3, 17, 29]
    assert 5 not in screening.screened(X, y, 39)
    assert screening.screened(X, y, 40).tolist() == list(range(40))
    seen = []
    real = boosting.quantised
    assert screening.screen_width(48) == 5_000_000 // 48  # a small fit keeps every gene
    assert screening.screen_width(7486) == 2000 and screening.screen_width(1200) == 4166
    monkeypatch.setattr(screening, "SCREEN_CELLS", 4 * 48)
    monkeypatch.setattr(screening, "SCREEN_GENES", 4)
    monkeypatch.setattr(
        boosting, "quantised", lambda X, *a, **k: seen.append(X.shape) or real(X, *a, **k)
    )
    folds = inner_folds(y, 0, 2)
    garbage = np.full((3, 40), 1e6, np.float32)  # test rows: never read by the screen
    p1, params = fit_xgboost(X, y, X[:3], folds, _job(y, n_test=3))
    # 24-row folds read 192 // 24 = 8 genes, the 48-row final model 4
    assert [s[1] for s in seen] == [8, 8, 8, 8, 4] and len(seen) == 2 * len(folds) + 1
    p2, same = fit_xgboost(X, y, garbage, folds, _job(y, n_test=3))
    assert params == same and p1.shape == p2.shape == (3, 3)
    assert p1[:, :].argmax(1).tolist() == y[:3].tolist()


def test_baseline_registry_and_the_elastic_net_file():
    """A baseline is one registered file: the elastic net is among the defaults, counted as a
    baseline (not a control), and tunes C and l1_ratio by inner CV on the labelled subset."""
    from exprssl.evaluation.baselines import BASELINES, available, default_baselines, get_baseline
    from exprssl.evaluation.tuning import inner_folds

    assert available()[:4] == ["logreg", "pca_logreg", "xgboost", "mlp"]
    assert "elasticnet" in default_baselines() and available()[-1] == "random_encoder"
    assert {n for n, b in BASELINES.items() if b.kind == "control"} == {"random_encoder"}
    net = get_baseline("elasticnet")
    assert net.kind == "baseline" and net.features == "X" and net.feature_key(3) == GENES
    assert get_baseline("random_encoder").feature_key(3) == FeatureKey.random(3)
    assert str(FeatureKey.random(3)) == "random:3" and str(FeatureKey.embedding("a", 0)) == "Z:a:0"
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(30, 200)).astype(np.float32)
    X[:, :5] += 2.0 * y[:, None]
    job = _job(y, n_test=6)
    proba, params = net.fit_predict(X, y, X[:6], inner_folds(y, 0, net.max_folds), job)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(1), 1) and params in net.grid
    assert (proba.argmax(1) == y[:6]).mean() >= 0.8
    _, default = net.fit_predict(X, y, X[:6], None, job)
    assert default == net.grid[0]


def test_elastic_net_fits_see_their_own_training_rows_top_genes(monkeypatch):
    """Above the screen's budget each elastic-net fit reads its own training rows' top genes by
    ANOVA F (folds: their training part; the final model and its attributions: the labelled
    subset): test rows never choose, and the attributions are zero off the screened genes."""
    from types import SimpleNamespace

    from exprssl.evaluation import screening
    from exprssl.evaluation.baselines import elasticnet, get_baseline
    from exprssl.evaluation.tuning import inner_folds

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 16)
    X = rng.normal(size=(48, 40)).astype(np.float32)
    X[:, [3, 17, 29]] += 2.0 * y[:, None]
    monkeypatch.setattr(screening, "SCREEN_CELLS", 4 * 48)
    monkeypatch.setattr(screening, "SCREEN_GENES", 4)
    widths = []
    real = elasticnet._classifier

    def spy(params, seed, warm_start=False):
        clf = real(params, seed, warm_start)
        fit = clf.fit
        clf.fit = lambda Z, yy: widths.append(Z.shape[1]) or fit(Z, yy)
        return clf

    monkeypatch.setattr(elasticnet, "_classifier", spy)
    net, folds = get_baseline("elasticnet"), inner_folds(y, 0, 2)
    garbage = np.full((3, 40), 1e6, np.float32)
    p1, params = net.fit_predict(X, y, X[:3], folds, _job(y, n_test=3))
    # 24-row folds read 192 // 24 = 8 genes (four grid points each), the final model 4
    assert widths[:8] == [8] * 8 and widths[-1] == 4
    _, same = net.fit_predict(X, y, garbage, folds, _job(y, n_test=3))
    assert same == params and p1.argmax(1).tolist() == y[:3].tolist()
    task = SimpleNamespace(
        labelled=lambda key: X, genes_key=lambda m: None, y_lab=y, n_classes=3, seed=0
    )
    weights = net.explain(task, None, params)
    assert weights.shape == (3, 40)
    assert set(np.flatnonzero(np.abs(weights).sum(0))) <= set(screening.screened(X, y, 4))
    assert {3, 17, 29} & set(np.flatnonzero(np.abs(weights).sum(0)))


def test_elastic_net_is_the_best_baseline_when_it_scores_highest():
    """The summary's best baseline (the verdicts' comparison) and the baselines the attributions
    explain both pick the elastic net when it scores highest; the control never counts."""
    import pandas as pd
    from fake_cells import cell

    from exprssl.evaluation.attribution_stage import chosen_approaches
    from exprssl.evaluation.stats import summarize

    rng = np.random.default_rng(0)
    res, preds = [], []
    for k in range(2):
        y = rng.integers(0, 3, 40)
        for frac, n in ((0.2, 6), (1.0, 30)):
            for method, kind, head, acc in (
                ("scarf", "ssl", "linear_probe", 0.6),
                ("logreg", "baseline", "logreg", 0.7),
                ("elasticnet", "baseline", "elasticnet", 0.9),
                ("random_encoder", "control", "random_encoder", 0.95),
            ):
                p = np.where(rng.random(40) < acc, y, (y + 1) % 3)
                r, pr = cell(k, 0, frac, method, kind, head, n, y, p, np.arange(40) + 100 * k)
                res.append(r)
                preds.append(pr)
    s = summarize(
        pd.DataFrame(res),
        pd.concat(preds),
        metric="balanced_accuracy",
        n_classes=3,
        n_test_per_split=40,
        n_boot=200,
    )
    assert (s.loc[s["best_baseline"], "approach"] == "elasticnet").all() and s[
        "best_baseline"
    ].sum() == 2
    assert (s.loc[s["best_ssl"], "vs"] == "elasticnet").all()
    explained = chosen_approaches(s, ["logreg", "elasticnet", "random_encoder"])
    assert explained == {f: ["scarf+linear_probe", "elasticnet"] for f in (0.2, 1.0)}


# ------------------------------------------------------------------ registries and attribution
@pytest.fixture
def registry_restored():
    """Baselines a test registers are gone again after it."""
    from exprssl.evaluation.baselines import BASELINES

    before = dict(BASELINES)
    yield
    BASELINES.clear()
    BASELINES.update(before)


def test_every_learner_says_how_its_approach_is_attributed():
    """Each SSL head and baseline declares its attribution, or that it has none and why."""
    from exprssl.attributions import HEADS
    from exprssl.evaluation.baselines import BASELINES
    from exprssl.evaluation.explainers import COEFFICIENTS, INTEGRATED_GRADIENTS, PCA_LOADINGS
    from exprssl.evaluation.ssl_heads import SSL_HEADS

    assert tuple(SSL_HEADS) == ("linear_probe", "finetune") == HEADS  # one list of heads
    how = {name: x.describe() for name, x in {**SSL_HEADS, **BASELINES}.items()}
    opaque = {n: how.pop(n) for n in ("xgboost", "random_encoder")}
    assert how == {
        "linear_probe": INTEGRATED_GRADIENTS,
        "finetune": INTEGRATED_GRADIENTS,
        "logreg": COEFFICIENTS,
        "pca_logreg": PCA_LOADINGS,
        "mlp": INTEGRATED_GRADIENTS,
        "elasticnet": COEFFICIENTS,
    }
    assert all(d.startswith("not attributable: ") and len(d) > 40 for d in opaque.values())
    assert [n for n, b in BASELINES.items() if b.linear] == ["logreg", "pca_logreg", "elasticnet"]


def test_one_approach_name_rule_read_both_ways():
    import pandas as pd

    from exprssl.evaluation.schema import approach_name, approach_names, method_and_head

    frame = pd.DataFrame(
        {"method": ["scarf", "logreg"], "kind": ["ssl", "baseline"], "head": ["finetune", "logreg"]}
    )
    names = approach_names(frame)
    assert (
        list(names)
        == ["scarf+finetune", "logreg"]
        == [approach_name(*r) for r in frame[["method", "kind", "head"]].itertuples(index=False)]
    )
    assert [method_and_head(a) for a in names] == [("scarf", "finetune"), ("logreg", "logreg")]


def test_a_registered_baseline_is_explained_without_editing_the_stage(tmp_path, registry_restored):
    """A baseline registered here with an explain capability is chosen (as the best linear
    baseline), explained by its own ``explain`` and taken as the linear reference; XGBoost, the
    best baseline, is left out with its reason. The stage never names either."""
    import inspect

    import pandas as pd

    from exprssl.evaluation import attribution_stage as stage
    from exprssl.evaluation.baselines import Baseline, get_baseline, register
    from exprssl.evaluation.explainers import COEFFICIENTS, AttributionTask

    @register("class_means")
    class ClassMeans(Baseline):
        attribution = COEFFICIENTS

        def fit_predict(self, F_lab, y_lab, F_test, folds, job):
            raise AssertionError("not scored here")

        def explain(self, task, method, params):
            X = task.labelled(task.genes_key(method))
            means = [X[task.y_lab == c].mean(0) for c in range(task.n_classes)]
            return params["scale"] * np.stack(means)

    assert "class_means" not in inspect.getsource(stage)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)).astype(np.float32), np.repeat([0, 1], 10)
    np.save(tmp_path / "X.npy", X)
    task = AttributionTask(
        0,
        1.0,
        [("class_means", "class_means", "class_means", {"scale": 2.0})],
        lab=np.arange(20),
        val=np.array([], dtype=int),
        rows=np.arange(20),
        y=y,
        n_classes=2,
        features={GENES: str(tmp_path / "X.npy")},
    )
    values = stage.explain_split(task)
    np.testing.assert_allclose(
        values["class_means"], 2 * np.stack([X[:10].mean(0), X[10:].mean(0)])
    )
    summary = pd.DataFrame(
        {
            "fraction": 1.0,
            "approach": ["scarf+finetune", "xgboost", "class_means", "logreg"],
            "mean": [0.8, 0.9, 0.85, 0.7],
            "best_ssl": [True, False, False, False],
            "best_baseline": [False, True, False, False],
        }
    )
    baselines = ["xgboost", "class_means", "logreg"]
    assert stage.learner("class_means").linear and not stage.learner("scarf+finetune").linear
    assert stage.chosen_approaches(summary, baselines) == {1.0: ["scarf+finetune", "class_means"]}
    assert stage.not_attributable(summary["approach"]) == {
        "xgboost": get_baseline("xgboost").why_not
    }


def test_an_incomplete_explain_capability_is_refused_at_registration(registry_restored):
    from exprssl.evaluation.baselines import Baseline, register
    from exprssl.evaluation.explainers import COEFFICIENTS

    with pytest.raises(TypeError, match="without explain"):

        @register("claims_coefficients")
        class Claims(Baseline):
            attribution = COEFFICIENTS

    with pytest.raises(TypeError, match="attribution must be one of"):

        @register("unknown_method")
        class Unknown(Baseline):
            attribution = "saliency"
