"""Classifiers on top of an encoder: a frozen linear probe and full fine-tuning."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn


def linear_probe(seed: int = 0, C: float = 1.0):
    """Standardised features -> multinomial logistic regression (the usual frozen-probe protocol)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))


class TorchClassifier:
    """Encoder + linear head trained with cross-entropy; sklearn-style ``fit`` / ``predict_proba``.

    The encoder is deep-copied, so a pretrained model is never modified. With ``freeze`` only the
    head trains (the paper's frozen set-up). Early stopping on the validation loss restores the
    best weights; without validation data it trains for ``epochs``.
    """

    def __init__(self, encoder: nn.Module, *, freeze: bool = False, epochs: int = 100, lr: float = 1e-3,
                 encoder_lr: float | None = None, weight_decay: float = 1e-4, batch_size: int = 64,
                 patience: int = 10, seed: int = 0):
        self.encoder = encoder
        self.freeze, self.epochs, self.lr = freeze, epochs, lr
        self.encoder_lr = lr if encoder_lr is None else encoder_lr
        self.weight_decay, self.batch_size, self.patience, self.seed = weight_decay, batch_size, patience, seed

    def fit(self, X, y, X_val=None, y_val=None):
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.classes_ = np.unique(np.asarray(y).astype(str))
        to_idx = {c: i for i, c in enumerate(self.classes_)}
        Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        yt = torch.as_tensor([to_idx[c] for c in np.asarray(y).astype(str)])
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            known = np.isin(np.asarray(y_val).astype(str), self.classes_)
            Xv = torch.as_tensor(np.asarray(X_val)[known], dtype=torch.float32)
            yv = torch.as_tensor([to_idx[c] for c in np.asarray(y_val).astype(str)[known]])
            has_val = len(yv) > 0
        enc = copy.deepcopy(self.encoder)
        for p in enc.parameters():
            p.requires_grad_(not self.freeze)
        self.model = nn.Sequential(enc, nn.Linear(enc.out_dim, len(self.classes_)))
        groups = [{"params": self.model[1].parameters(), "lr": self.lr}]
        if not self.freeze:
            groups.append({"params": enc.parameters(), "lr": self.encoder_lr})
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        n = len(yt)
        bs = max(2, min(self.batch_size, n))
        best, best_state, bad = float("inf"), None, 0
        for _ in range(self.epochs):
            self.model.train()
            if self.freeze:
                enc.eval()  # frozen: BatchNorm statistics stay those of pretraining
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                if len(idx) < 2:  # BatchNorm cannot train on a batch of one
                    continue
                opt.zero_grad(set_to_none=True)
                loss_fn(self.model(Xt[idx]), yt[idx]).backward()
                opt.step()
            if has_val:
                self.model.eval()
                with torch.no_grad():
                    v = float(loss_fn(self.model(Xv), yv))
                if v < best - 1e-4:
                    best, best_state, bad = v, copy.deepcopy(self.model.state_dict()), 0
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        with torch.no_grad():
            logits = self.model(torch.as_tensor(np.asarray(X), dtype=torch.float32))
        return torch.softmax(logits, 1).numpy()

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]
