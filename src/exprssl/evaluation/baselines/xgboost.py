"""XGBoost on the preprocessed genes: depth, minimum child weight and learning rate tuned by
inner CV, rounds by early stopping."""

from __future__ import annotations

from ..learners import fit_xgboost
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("xgboost")
class XGBoost(Baseline):
    kind = "baseline"
    features = "X"
    grid = GRIDS["xgboost"]
    max_folds = MAX_FOLDS["xgboost"]
    order = 30
    why_not = (
        "a tree ensemble has neither per-gene coefficients nor gradients to integrate "
        "(tree SHAP values would be needed; not computed)"
    )

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_xgboost(F_lab, y_lab, F_test, folds, job)
