"""Self-supervised losses as plain torch functions, usable outside any trainer.

A loss made of several terms returns a ``LossOutput`` naming them, so training can log what
moved (VIME's mask BCE vs its reconstruction MSE, Barlow's on- vs off-diagonal terms).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F


@dataclass
class LossOutput:
    """A loss and what it is made of (in the spirit of scvi-tools' ``LossOutput``).

    ``total`` is what the optimiser minimises. ``parts`` are its named terms, and ``metrics``
    other per-step scalars worth following (BYOL's tau); both are scalar tensors or floats,
    stored detached, and the trainer records their epoch means in the history
    (``train_<name>``, and ``val_<name>`` for parts).
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor | float] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)

    def __post_init__(self):
        self.parts = {k: _detached(v) for k, v in self.parts.items()}
        self.metrics = {k: _detached(v) for k, v in self.metrics.items()}


def _detached(v: torch.Tensor | float) -> torch.Tensor | float:
    return v.detach() if isinstance(v, torch.Tensor) else float(v)


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


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> LossOutput:
    """Barlow Twins: push the batch cross-correlation of the two views to the identity
    (over the global batch under DDP).

    ``total = on_diag + lambd * off_diag``; parts ``on_diag`` (invariance: sum of (1 - C_ii)^2)
    and ``off_diag`` (redundancy reduction: sum of C_ij^2, i != j, unweighted).
    """
    z1, z2 = gather_across_processes(z1), gather_across_processes(z2)
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-6)
    b = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-6)
    c = a.T @ b / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return LossOutput(on_diag + lambd * off_diag, {"on_diag": on_diag, "off_diag": off_diag})


def vime_loss(
    mask_logits: torch.Tensor,
    mask_target: torch.Tensor,
    recon: torch.Tensor,
    x_orig: torch.Tensor,
    alpha: float = 2.0,
) -> LossOutput:
    """VIME self-supervised loss: BCE(mask estimate) + alpha * MSE(feature reconstruction).

    Parts ``mask_bce`` and ``recon_mse``; ``total = mask_bce + alpha * recon_mse``.
    """
    bce = F.binary_cross_entropy_with_logits(mask_logits, mask_target.to(mask_logits.dtype))
    mse = F.mse_loss(recon, x_orig)
    return LossOutput(bce + alpha * mse, {"mask_bce": bce, "recon_mse": mse})


def masked_mse(
    recon: torch.Tensor, x_orig: torch.Tensor, mask: torch.Tensor, unmasked_weight: float = 0.0
) -> LossOutput:
    """MSE on the corrupted entries, plus ``unmasked_weight`` times the MSE on the others.

    Parts ``masked_mse`` and ``unmasked_mse`` (both always reported: the second shows how well
    the untouched genes are passed through even when it carries no weight).
    """
    err = (recon - x_orig).pow(2)
    m = mask.to(err.dtype)
    n_masked, masked_sum = m.sum(), (err * m).sum()
    masked = masked_sum / n_masked.clamp_min(1)
    unmasked = (err.sum() - masked_sum) / (m.numel() - n_masked).clamp_min(1)
    total = masked + unmasked_weight * unmasked if unmasked_weight > 0 else masked
    return LossOutput(total, {"masked_mse": masked, "unmasked_mse": unmasked})
