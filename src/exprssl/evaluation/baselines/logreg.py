"""Logistic regression on the standardised preprocessed genes, C tuned by inner CV."""

from __future__ import annotations

from ..explainers import COEFFICIENTS, coefficients
from ..learners import fit_linear, fit_logistic
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("logreg")
class LogReg(Baseline):
    kind = "baseline"
    features = "X"
    grid = GRIDS["logistic"]
    max_folds = MAX_FOLDS["logistic"]
    order = 10
    attribution = COEFFICIENTS

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_linear(F_lab, y_lab, F_test, "logistic", folds, job)

    def explain(self, task, method, params):
        X_lab = task.labelled(task.genes_key(method))
        return coefficients(fit_logistic(X_lab, task.y_lab, params, task.seed), task.n_classes)
