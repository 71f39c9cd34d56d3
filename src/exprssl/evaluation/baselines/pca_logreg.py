"""PCA (fit on the pretraining pool, labels unused) + logistic regression on the first k
scores, k tuned by inner CV."""

from __future__ import annotations

from ..explainers import PCA_LOADINGS
from ..keys import PCA_SCORES, POOL
from ..learners import fit_linear, fit_logistic
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("pca_logreg")
class PCALogReg(Baseline):
    kind = "baseline"
    features = "pca"
    grid = GRIDS["pca"]
    max_folds = MAX_FOLDS["pca"]
    order = 20
    attribution = PCA_LOADINGS

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_linear(F_lab, y_lab, F_test, "pca", folds, job)

    def explain(self, task, method, params):
        import numpy as np

        from ..explainers import logistic_weights, pca_gene_weights
        from ..features import fit_pool_pca

        pca = fit_pool_pca(np.load(task.features[POOL]))  # the fit its features came from
        model = fit_logistic(task.labelled(PCA_SCORES), task.y_lab, params, task.seed)
        W, _ = logistic_weights(model, task.n_classes)
        return pca_gene_weights(W[:, : params.get("k", W.shape[1])], pca.components_)
