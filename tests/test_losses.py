"""Each loss equals a hand-written reference computation on a tiny tensor."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from exprssl.losses import barlow_twins_loss, byol_loss, masked_mse, nt_xent, vime_loss


def _cos(a, b):
    return float(sum(x * y for x, y in zip(a, b, strict=True)) /
                 (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))


def test_nt_xent_reference():
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    t = 0.5
    z = [r.tolist() for r in torch.cat([z1, z2])]
    n = 3
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(_cos(z[i], z[pos]) / t)
        den = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    assert_close(nt_xent(z1, z2, t).item(), total / (2 * n))


def test_byol_loss_reference_and_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    expected = ((2 - 2 * 0.0) + (2 - 2 * 1.0)) / 2
    loss = byol_loss(p, z)
    assert_close(loss.item(), expected)
    loss.backward()
    assert z.grad is None and p.grad is not None


def test_barlow_reference():
    torch.manual_seed(1)
    z1, z2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    lambd = 0.1

    def standardise(z):
        cols = []
        for j in range(z.shape[1]):
            col = z[:, j].tolist()
            m = sum(col) / len(col)
            s = math.sqrt(sum((v - m) ** 2 for v in col) / len(col))
            cols.append([(v - m) / (s + 1e-6) for v in col])
        return cols

    a, b = standardise(z1), standardise(z2)
    expected = 0.0
    for i in range(3):
        for j in range(3):
            c = sum(x * y for x, y in zip(a[i], b[j], strict=True)) / 5
            expected += (1 - c) ** 2 if i == j else lambd * c ** 2
    assert_close(barlow_twins_loss(z1, z2, lambd).item(), expected)


def test_vime_reference():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    target = torch.tensor([[True, False], [False, True]])
    recon = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.tensor([[1.5, 2.0], [2.0, 4.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    bce = -(math.log(sig(0.0)) + math.log(1 - sig(2.0)) + math.log(1 - sig(-1.0)) + math.log(sig(0.5))) / 4
    mse = (0.25 + 0 + 1 + 0) / 4
    total, b, m = vime_loss(logits, target, recon, x, alpha=2.0)
    assert_close(b.item(), bce)
    assert_close(m.item(), mse)
    assert_close(total.item(), bce + 2 * mse)


def test_masked_mse_reference():
    recon = torch.tensor([[1.0, 2.0, 3.0]])
    x = torch.tensor([[0.0, 2.0, 5.0]])
    mask = torch.tensor([[True, False, True]])
    assert_close(masked_mse(recon, x, mask).item(), (1 + 4) / 2)
    assert_close(masked_mse(recon, x, mask, unmasked_weight=0.5).item(), 2.5 + 0.5 * 0.0)


def test_gradients_flow():
    z1 = torch.randn(8, 4, requires_grad=True)
    z2 = torch.randn(8, 4, requires_grad=True)
    (nt_xent(z1, z2) + barlow_twins_loss(z1, z2)).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0
