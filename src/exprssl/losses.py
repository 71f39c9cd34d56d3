"""Self-supervised losses as plain torch functions, usable outside any trainer."""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_across_processes(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` over all processes with gradients (identity when not distributed).

    Contrastive and Barlow losses are defined on the whole batch: under DDP each process computes
    the loss on the global batch; the gather's backward sums gradients back to their owners and
    DDP's averaging then yields exactly the single-process gradient of the concatenated batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a not-yet-differentiable API
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(z.contiguous()), dim=0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent / InfoNCE of SimCLR and SCARF.

    The 2N embeddings are compared by cosine similarity; each anchor's positive is its pair in the
    other view and the other 2N - 2 embeddings are its negatives. Mean over all 2N anchors.
    Under DDP, N is the global batch (see ``gather_across_processes``).
    """
    z1, z2 = gather_across_processes(z1), gather_across_processes(z2)
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z): online prediction ``p`` towards a (detached) target projection ``z``."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Barlow Twins: push the batch cross-correlation of the two views to the identity
    (over the global batch under DDP)."""
    z1, z2 = gather_across_processes(z1), gather_across_processes(z2)
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-6)
    b = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-6)
    c = a.T @ b / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def vime_loss(mask_logits: torch.Tensor, mask_target: torch.Tensor, recon: torch.Tensor,
              x_orig: torch.Tensor, alpha: float = 2.0):
    """VIME self-supervised loss: BCE(mask estimate) + alpha * MSE(feature reconstruction).

    Returns ``(total, bce, mse)``.
    """
    bce = F.binary_cross_entropy_with_logits(mask_logits, mask_target.to(mask_logits.dtype))
    mse = F.mse_loss(recon, x_orig)
    return bce + alpha * mse, bce, mse


def masked_mse(recon: torch.Tensor, x_orig: torch.Tensor, mask: torch.Tensor,
               unmasked_weight: float = 0.0) -> torch.Tensor:
    """MSE on the corrupted entries, plus ``unmasked_weight`` times the MSE on the others."""
    err = (recon - x_orig).pow(2)
    m = mask.to(err.dtype)
    masked = (err * m).sum() / m.sum().clamp_min(1)
    if unmasked_weight <= 0:
        return masked
    return masked + unmasked_weight * (err * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
