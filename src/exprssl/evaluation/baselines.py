"""Supervised baselines and the random-encoder control, scored on the same labelled subsets as
the SSL heads (``cells.evaluate_group`` trains them).

Each is (kind, learner, features): logistic regression on the standardised genes, PCA (fit on
the pretraining pool) + logistic regression, XGBoost, and the SSL encoder's architecture
trained from scratch with the fine-tuning recipe (``mlp``): pretraining is its only difference
from fine-tuning. The random-init frozen encoder + probe is a control, not a baseline: it shows
what pretraining adds to the architecture, and is never the "best baseline" a verdict compares to.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# name -> (kind, learner, features); features "X" are the preprocessed genes
BASELINES: dict[str, tuple[str, str, str]] = {
    "logreg": ("baseline", "logistic", "X"),
    "pca_logreg": ("baseline", "pca", "pca"),
    "xgboost": ("baseline", "xgboost", "X"),
    "mlp": ("baseline", "torch", "X"),
    "random_encoder": ("control", "logistic", "random"),
}


def random_encoder(n_features: int, encoder_config: dict[str, Any], X_pool, seed: int = 0):
    """A random-init encoder whose BatchNorm statistics are those of the unlabeled pool (as a
    pretraining epoch would leave them), frozen: the control that shows what pretraining adds.
    Dropout is off during calibration, as at inference, so the statistics match what the probe sees."""
    import torch

    from ..encoders import MLPEncoder

    torch.manual_seed(seed)
    enc = MLPEncoder(n_features, encoder_config["hidden_dims"], encoder_config["dropout"])
    enc.eval()
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.train()
                m.momentum = None  # cumulative average over the one pass
        enc(torch.as_tensor(np.asarray(X_pool), dtype=torch.float32))
    return enc.eval()
