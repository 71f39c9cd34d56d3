"""Logistic regression on the standardised preprocessed genes, C tuned by inner CV."""

from __future__ import annotations

from ..learners import fit_linear
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("logreg")
class LogReg(Baseline):
    kind = "baseline"
    features = "X"
    grid = GRIDS["logistic"]
    max_folds = MAX_FOLDS["logistic"]
    order = 10

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_linear(F_lab, y_lab, F_test, "logistic", folds, job)
