"""Derived features, computed once per split and read by every cell (memory-mapped): each
pretrained model's embeddings, PCA scores (fit on the pretraining pool) and the random-encoder
control's features (only the families some chosen baseline reads). ``write_features`` records
each file under its ``schema.FeatureKey``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..utils import atomic_save, atomic_savez, atomic_write_text
from .schema import GENES, PCA_SCORES, POOL, FeatureKey, Layout

if TYPE_CHECKING:
    from .cohort import Cohort
    from .planning import Split

PCA_MAX_COMPONENTS = 50


def random_encoder(n_features: int, encoder_config: dict[str, Any], X_pool, seed: int = 0):
    """A random-init encoder whose BatchNorm statistics are those of the unlabeled pool (as a
    pretraining epoch would leave them), frozen: the control that shows what pretraining adds.
    Dropout is off during calibration, as at inference, so the statistics match what the probe
    sees."""
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


def write_features(cfg, cohort: Cohort, s: Split, feats: dict[str, str], models, out: Path) -> None:
    """Every derived feature of split ``s``, added to ``feats`` (feature key -> ``.npy`` path);
    split 0 also writes the report's histories and test-set embeddings."""
    from .baselines import get_baseline

    cache = Path(feats[GENES]).parent
    X = np.load(feats[GENES])
    pool_x = np.load(feats[POOL])
    _write_embeddings(cfg, cohort, s, feats, models, out, X)
    families = {get_baseline(b).features for b in cfg.baselines}
    if "pca" in families:
        atomic_save(cache / "pca.npy", pca_scores(pool_x, X))
        feats[PCA_SCORES] = str(cache / "pca.npy")
    for seed in range(cfg.seeds) if "random" in families else ():
        atomic_save(cache / f"random_{seed}.npy", random_features(X, pool_x, cfg.encoder, seed))
        feats[FeatureKey.random(seed)] = str(cache / f"random_{seed}.npy")
    if s.index == 0:
        atomic_savez(
            Layout(out).embedding("raw"),
            Z=np.asarray(X[s.test]),
            labels=cohort.classes[cohort.y[s.test]].astype(str),
        )


def _write_embeddings(
    cfg, cohort: Cohort, s: Split, feats: dict[str, str], models, out: Path, X: np.ndarray
) -> None:
    """Each pretrained model's embedding of every profile (and, for split 0, the first
    model's training history and test-set embedding for the report)."""
    from ..model import SSLModel

    cache = Path(feats[GENES]).parent
    for method in cfg.methods:
        for p in range(cfg.pretrain_seeds):
            path = cache / f"Z_{method}_{p}.npy"
            model = SSLModel.load(models[s.index, method, p])
            Z = model.embed_preprocessed(np.asarray(X))
            atomic_save(path, Z)
            feats[FeatureKey.embedding(method, p)] = str(path)
            if s.index == 0 and p == 0:
                atomic_write_text(Layout(out).history(method), model.history_.to_csv(index=False))
                atomic_savez(
                    Layout(out).embedding(method),
                    Z=Z[s.test],
                    labels=cohort.classes[cohort.y[s.test]].astype(str),
                )


def fit_pool_pca(pool_x: np.ndarray):
    """PCA (up to 50 components) fit on the pretraining pool: the ``pca_logreg`` baseline's
    features, and its loadings when its coefficients are mapped back to genes."""
    from sklearn.decomposition import PCA

    n = int(min(PCA_MAX_COMPONENTS, pool_x.shape[0] - 1, pool_x.shape[1]))
    return PCA(n_components=n, random_state=0).fit(pool_x)


def pca_scores(pool_x: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``fit_pool_pca``'s scores of every profile."""
    return fit_pool_pca(pool_x).transform(np.asarray(X)).astype(np.float32)


def random_features(
    X: np.ndarray, pool_x: np.ndarray, encoder: dict[str, Any], seed: int
) -> np.ndarray:
    """Every profile through a random-init encoder calibrated on the pool (the control)."""
    import torch

    enc = random_encoder(X.shape[1], encoder, pool_x, seed)
    with torch.no_grad():
        return enc(torch.as_tensor(np.asarray(X))).numpy()
