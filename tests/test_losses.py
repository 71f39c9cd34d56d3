"""Each loss equals a hand-written reference computation on a tiny tensor, and a composite
loss names its parts."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from exprssl.losses import LossOutput, barlow_twins_loss, byol_loss, masked_mse, nt_xent, vime_loss


def _cos(a, b):
    return float(
        sum(x * y for x, y in zip(a, b, strict=True))
        / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    )


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
    on, off = 0.0, 0.0
    for i in range(3):
        for j in range(3):
            c = sum(x * y for x, y in zip(a[i], b[j], strict=True)) / 5
            if i == j:
                on += (1 - c) ** 2
            else:
                off += c**2
    out = barlow_twins_loss(z1, z2, lambd)
    assert set(out.parts) == {"on_diag", "off_diag"}
    assert_close(out.parts["on_diag"].item(), on)
    assert_close(out.parts["off_diag"].item(), off)
    assert_close(out.total.item(), on + lambd * off)


def test_vime_reference():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    target = torch.tensor([[True, False], [False, True]])
    recon = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.tensor([[1.5, 2.0], [2.0, 4.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    bce = (
        -(
            math.log(sig(0.0))
            + math.log(1 - sig(2.0))
            + math.log(1 - sig(-1.0))
            + math.log(sig(0.5))
        )
        / 4
    )
    mse = (0.25 + 0 + 1 + 0) / 4
    out = vime_loss(logits, target, recon, x, alpha=2.0)
    assert set(out.parts) == {"mask_bce", "recon_mse"}
    assert_close(out.parts["mask_bce"].item(), bce)
    assert_close(out.parts["recon_mse"].item(), mse)
    assert_close(out.total.item(), bce + 2 * mse)


def test_masked_mse_reference():
    recon = torch.tensor([[1.0, 2.0, 3.0]])
    x = torch.tensor([[0.0, 2.0, 5.0]])
    mask = torch.tensor([[True, False, True]])
    recon2 = torch.tensor([[1.0, 5.0, 3.0]])  # the unmasked gene is off by 3
    out = masked_mse(recon, x, mask)
    assert_close(out.total.item(), (1 + 4) / 2)
    assert_close(out.parts["masked_mse"].item(), 2.5)
    assert_close(out.parts["unmasked_mse"].item(), 0.0)
    out = masked_mse(recon2, x, mask, unmasked_weight=0.5)
    assert_close(out.parts["unmasked_mse"].item(), 9.0)
    assert_close(out.total.item(), 2.5 + 0.5 * 9.0)
    assert_close(masked_mse(recon2, x, mask).total.item(), 2.5)  # weight 0: reported, not optimised


def test_gradients_flow():
    z1 = torch.randn(8, 4, requires_grad=True)
    z2 = torch.randn(8, 4, requires_grad=True)
    (nt_xent(z1, z2) + barlow_twins_loss(z1, z2).total).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_loss_output_parts_are_detached_scalars():
    total = torch.tensor(2.0, requires_grad=True) * 3
    out = LossOutput(total, {"a": total * 2}, {"tau": 0.5})
    assert out.total.requires_grad and not out.parts["a"].requires_grad
    assert out.parts["a"].item() == 12.0 and out.metrics == {"tau": 0.5}
