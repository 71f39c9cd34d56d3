"""Elastic-net logistic regression on the standardised preprocessed genes (saga): C and the
L1 share (l1_ratio) tuned by the inner CV, each fold along one warm-started path over C per L1
share (``learners.fit_by_path``). A sparse linear model over thousands of genes is the classic
strong baseline for expression data; iterations are bounded to keep a cell fast.

A saga epoch visits every coefficient of every row (rows x genes x classes), so a fit on many
rows reads its own training rows' top genes by ANOVA F, as XGBoost does (``screening``: at 7,486
rows x 20,000 genes, 2,000 of them; the bundled cohorts, ~100 rows, keep every gene). Screening
before a sparse fit is what sure independence screening was designed for (Fan & Lv 2008); the
attributions are the screened fit's coefficients, zero for the genes it did not read."""

from __future__ import annotations

import warnings

import numpy as np

from ..explainers import COEFFICIENTS, coefficients
from ..learners import fit_by_path
from ..screening import screened
from . import Baseline, register

MAX_ITER = 100  # saga epochs at most; with tol=1e-2 a fit takes well under a second


def _classifier(params, seed, warm_start: bool = False):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        solver="saga",
        l1_ratio=params["l1_ratio"],
        C=params["C"],
        max_iter=MAX_ITER,
        tol=1e-2,
        random_state=seed,
        warm_start=warm_start,
        **_PENALTY,
    )


def _fit(F, y, params, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), _classifier(params, seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(F, y)


def _penalty() -> dict:
    """scikit-learn >= 1.8 reads elastic net from l1_ratio alone (``penalty`` is deprecated)."""
    import sklearn

    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    return {} if (major, minor) >= (1, 8) else {"penalty": "elasticnet"}


_PENALTY = _penalty()


@register("elasticnet")
class ElasticNet(Baseline):
    kind = "baseline"
    features = "X"
    # default first; C is the inverse regularisation strength on standardised genes
    grid = [
        {"C": 1.0, "l1_ratio": 0.5},
        {"C": 0.1, "l1_ratio": 0.5},
        {"C": 1.0, "l1_ratio": 0.9},
        {"C": 1.0, "l1_ratio": 0.1},
    ]
    max_folds = 2  # the costly learners get two inner folds (as XGBoost and the torch heads)
    order = 50
    attribution = COEFFICIENTS

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_by_path(
            F_lab, y_lab, F_test, self.grid, folds, job, _classifier, quiet=True, screen=True
        )

    def explain(self, task, method, params):
        X_lab = task.labelled(task.genes_key(method))
        genes = screened(X_lab, task.y_lab)  # the final model's genes, as in fit_predict
        weights = np.zeros((task.n_classes, X_lab.shape[1]), np.float32)
        model = _fit(X_lab[:, genes], task.y_lab, params, task.seed)
        weights[:, genes] = coefficients(model, task.n_classes)
        return weights
