"""PCA (fit on the pretraining pool, labels unused) + logistic regression on the first k
scores, k tuned by inner CV."""

from __future__ import annotations

from ..learners import fit_linear
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("pca_logreg")
class PCALogReg(Baseline):
    kind = "baseline"
    features = "pca"
    grid = GRIDS["pca"]
    max_folds = MAX_FOLDS["pca"]
    order = 20

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_linear(F_lab, y_lab, F_test, "pca", folds, job)
