"""The SSL encoder's architecture trained from a random init with the fine-tuning recipe:
pretraining is its only difference from fine-tuning (the learning-rate scale tuned alike)."""

from __future__ import annotations

from ..explainers import INTEGRATED_GRADIENTS, trained_network_attributions
from ..learners import fit_torch, train_torch
from ..tuning import GRIDS, MAX_FOLDS
from . import Baseline, register


@register("mlp")
class MLP(Baseline):
    kind = "baseline"
    features = "X"
    grid = GRIDS["torch"]
    max_folds = MAX_FOLDS["torch"]
    order = 40
    attribution = INTEGRATED_GRADIENTS

    def fit_predict(self, F_lab, y_lab, F_test, folds, job):
        import torch

        from ...encoders import MLPEncoder

        torch.manual_seed(job.seed)
        enc = MLPEncoder(F_lab.shape[1], job.encoder["hidden_dims"], job.encoder["dropout"])
        return fit_torch(F_lab, y_lab, F_test, enc, folds, job)

    def explain(self, task, method, params):
        import torch

        from ...encoders import MLPEncoder

        torch.manual_seed(task.seed)
        X_lab = task.labelled(task.genes_key(method))
        enc = MLPEncoder(X_lab.shape[1], task.encoder["hidden_dims"], task.encoder["dropout"])
        net = train_torch(X_lab, task.y_lab, enc, params, task)
        return trained_network_attributions(task, method, net)
