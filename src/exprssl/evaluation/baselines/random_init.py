"""The control: a random-init encoder (BatchNorm calibrated on the pool), frozen, with a
logistic probe. It shows what pretraining adds to the architecture and is never the "best
baseline" a verdict compares to."""

from __future__ import annotations

from ..learners import fit_linear
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("random_encoder")
class RandomEncoder(Baseline):
    kind = "control"
    features = "random"
    grid = GRIDS["logistic"]
    max_folds = MAX_FOLDS["logistic"]
    order = 90
    why_not = (
        "the control's random encoder is not kept (only its features are), so there is no "
        "network to attribute through; what an untrained encoder leans on says nothing about "
        "pretraining"
    )

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        return fit_linear(F_lab, y_lab, F_test, "logistic", folds, job)
