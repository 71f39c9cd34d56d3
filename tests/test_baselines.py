"""Baselines are fair controls: calibrated like a pretrained encoder, trained like fine-tuning."""

from __future__ import annotations

import numpy as np
import torch

from exprssl.evaluation.baselines import BASELINES, BaselineContext, random_encoder


def test_random_encoder_batchnorm_matches_the_pool_at_inference():
    """Calibrated with dropout off (as at inference), each BatchNorm standardises the pool's
    activations: mean 0, variance 1 in eval mode. With dropout on during calibration the stored
    variance is inflated and eval-mode variance falls to ~(1 - p)."""
    X_pool = np.random.default_rng(0).normal(2.0, 3.0, (400, 50)).astype(np.float32)
    enc = random_encoder(50, {"hidden_dims": [32, 32], "dropout": 0.5}, X_pool, seed=0)
    assert not enc.training
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.clone()))  # ReLU is in place
             for m in enc.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():
        enc(torch.from_numpy(X_pool))
    for h in hooks:
        h.remove()
    assert len(seen) == 2
    for out in seen:
        assert out.mean(0).abs().max() < 5e-3
        np.testing.assert_allclose(out.var(0, unbiased=False).numpy(), 1.0, atol=0.01)  # running var: unbiased


def test_mlp_from_scratch_uses_the_fine_tuning_recipe():
    """Same network, same optimiser settings as SSL fine-tuning: only pretraining differs."""
    ft = {"epochs": 7, "lr": 1e-3, "encoder_lr": 1e-5, "batch_size": 8, "patience": 2}
    ctx = BaselineContext(n_features=20, X_pool=np.zeros((4, 20), np.float32), seed=0,
                          encoder_config={"hidden_dims": [8, 4], "dropout": 0.0}, finetune=ft)
    clf = BASELINES["mlp"](ctx)
    assert (clf.epochs, clf.lr, clf.encoder_lr, clf.batch_size, clf.patience) == (7, 1e-3, 1e-5, 8, 2)
    assert clf.encoder.out_dim == 4 and not clf.freeze


def test_baselines_without_early_stopping_train_on_the_validation_part_too():
    """The SSL probes fit on the whole labelled subset; a baseline that ignored the validation
    part carved out for the torch heads would see 20% fewer labels."""
    rng = np.random.default_rng(0)
    X, X_val = rng.normal(size=(12, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    y, y_val = np.array(["a", "b"] * 6), np.array(["c"] * 4)  # class c only in the validation part
    ctx = BaselineContext(n_features=6, X_pool=rng.normal(size=(30, 6)).astype(np.float32), seed=0,
                          encoder_config={"hidden_dims": [8], "dropout": 0.0})
    for name in ("logreg", "xgboost", "pca_logreg", "random_encoder"):
        clf = BASELINES[name](ctx).fit(X, y, X_val, y_val)
        assert list(clf.classes_) == ["a", "b", "c"], name
        assert clf.predict_proba(X_val).shape == (4, 3)
