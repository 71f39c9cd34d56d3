"""Registry, per-method contract, BYOL's EMA, VIME's mask target."""

from __future__ import annotations

import math

import pytest
import torch

from exprssl.errors import ConfigError
from exprssl.methods import available, build_method
from exprssl.methods.byol import cosine_tau, ema_update


def test_registry_lists_the_five_methods():
    assert available() == ["barlow", "byol", "mae", "scarf", "vime"]
    with pytest.raises(ConfigError, match="unknown method 'simclr'; available: barlow, byol, mae, scarf, vime"):
        build_method("simclr", 10)
    with pytest.raises(ConfigError, match="unknown option.*'scarf': temprature"):
        build_method("scarf", 10, temprature=0.5)


def test_default_encoder_is_the_papers():
    m = build_method("scarf", 100)
    linears = [layer for layer in m.encoder if isinstance(layer, torch.nn.Linear)]
    assert [layer.out_features for layer in linears] == [256] * 4 and m.encoder.out_dim == 256
    assert any(isinstance(layer, torch.nn.Dropout) and layer.p == 0.2 for layer in m.encoder)
    assert m.config["temperature"] == 1.0 and m.config["corruption_rate"] == 0.3


@pytest.mark.parametrize("name", ["scarf", "byol", "vime", "barlow", "mae"])
def test_method_contract(name):
    torch.manual_seed(0)
    m = build_method(name, 40, hidden_dims=[32, 16])
    X = torch.randn(64, 40)
    m.fit_augmentations(X)
    loss, parts = m.loss(X[:16])
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert m.encoder[0].weight.grad is not None and m.encoder[0].weight.grad.abs().sum() > 0
    assert m.embed(X[:5]).shape == (5, 16)
    torch.manual_seed(1)
    l1, _ = m.loss(X[:16])
    torch.manual_seed(1)
    l2, _ = m.loss(X[:16])
    assert l1.item() == l2.item()  # seeded forward is reproducible


def test_ema_update_exact():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    w_o, w_t = online.weight.detach().clone(), target.weight.detach().clone()
    ema_update(online, target, 0.9)
    torch.testing.assert_close(target.weight, 0.9 * w_t + 0.1 * w_o)


def test_cosine_tau_schedule():
    assert cosine_tau(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_tau(0.99, 100, 100) == pytest.approx(1.0)
    assert cosine_tau(0.99, 50, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)


def test_byol_target_is_ema_only():
    m = build_method("byol", 20, hidden_dims=[16], proj_hidden=32, proj_dim=8, tau=0.9, ema_schedule="fixed")
    m.fit_augmentations(torch.randn(32, 20))
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    assert {id(p) for p in m.trainable_parameters()}.isdisjoint({id(p) for p in m.target_encoder.parameters()})
    before_t = m.target_encoder[0].weight.detach().clone()
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.5)
    loss, _ = m.loss(torch.randn(16, 20))
    loss.backward()
    opt.step()
    assert torch.equal(m.target_encoder[0].weight, before_t)  # gradients never touch the target
    m.on_train_batch_end(1, 10)
    torch.testing.assert_close(m.target_encoder[0].weight, 0.9 * before_t + 0.1 * m.encoder[0].weight.detach())


def test_vime_mask_target_is_changed_entries(monkeypatch):
    m = build_method("vime", 6, hidden_dims=[8])
    x = torch.tensor([[1.0, 1.0, 2.0, 3.0, 0.0, 0.0], [1.0, 1.0, 2.0, 5.0, 0.0, 7.0]])
    seen = {}

    def fake_loss(mask_logits, mask_target, recon, x_orig, alpha):
        seen["target"] = mask_target
        return recon.sum() * 0, recon.sum() * 0, recon.sum() * 0

    import exprssl.methods.vime as vime_mod

    monkeypatch.setattr(vime_mod, "vime_loss", fake_loss)
    torch.manual_seed(0)
    x_c, mask = m.corruptor(x)
    torch.manual_seed(0)
    m.loss(x)
    assert torch.equal(seen["target"], x_c != x)
    # batch_permute on columns with equal values: selected but unchanged entries are not targets
    assert (mask & ~seen["target"]).any()


def test_mae_reconstructs_original_on_masked_entries():
    torch.manual_seed(0)
    m = build_method("mae", 30, hidden_dims=[64], decoder_hidden=64, dropout=0.0)
    X = torch.randn(256, 8) @ torch.randn(8, 30)  # low-rank: masked genes are predictable
    opt = torch.optim.Adam(m.trainable_parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss, _ = m.loss(X)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
