"""Classifier heads trained as many models at once.

A benchmark cell trains the same small network several times: once per candidate learning rate
and inner cross-validation fold, then the final fit. Trained one by one, each tiny fit pays the
full per-step overhead and a cold optimizer for a few dozen labelled samples. ``StackedMLP``
holds M copies of an encoder + linear head with stacked parameters: the first layer of all M is
one GEMM over the shared input, the deeper layers one batched GEMM each, and each model sees
only its own training rows through a mask (its BatchNorm statistics and loss use those rows
only). Early stopping keeps each model's best weights by an indexed copy, not a deep copy of a
state dict, and a model that has stopped leaves the stack: its columns of every GEMM and its
optimizer state are dropped, so no step is spent on a model whose result is already fixed (its
dropout masks are still drawn, so the others train exactly as before). The network and its data
live on one torch device (the benchmark's ``accelerator``); the models are already batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import MLPEncoder
from ..options import option, options_class, validate_options

PATIENCE_BATCHES = 32  # batches an epoch up to which patience counts epochs (see patience_epochs)
MIN_PATIENCE = 2


def _encoder_blocks(
    encoder: MLPEncoder,
) -> tuple[list[tuple[nn.Linear, nn.BatchNorm1d | None]], float]:
    """(Linear, BatchNorm or None) per block of an MLPEncoder, and its dropout rate."""
    blocks: list[tuple[nn.Linear, nn.BatchNorm1d | None]] = []
    dropout = 0.0
    for m in encoder:
        if isinstance(m, nn.Linear):
            blocks.append((m, None))
        elif isinstance(m, nn.BatchNorm1d):
            blocks[-1] = (blocks[-1][0], m)
        elif isinstance(m, nn.Dropout):
            dropout = float(m.p)
    return blocks, dropout


def dropout_mask(
    shape, p: float, rng: np.random.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Inverted-dropout multipliers (0 or 1/(1-p)) from 16-bit keys, four per 64-bit draw of the
    bit generator: about 10x cheaper than torch's CPU Bernoulli sampling, which cost a third of a
    small head's training step. The rate is exact to 2^-16."""
    rng = rng if rng is not None else np.random.default_rng()
    n = int(np.prod(shape))
    keys = rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]
    keep = keys >= np.uint16(round(p * 65536)) if p < 1 else np.zeros(n, dtype=bool)
    return torch.from_numpy(
        keep.reshape(shape).astype(np.float32) * np.float32(1 / (1 - p) if p < 1 else 0)
    ).to(device)


class _StackedBlock(nn.Module):
    """One Linear (+ BatchNorm) block of M models. The first block's weight is stored
    (in, M, out), so that one GEMM (n, in) x (in, M*out) serves all M models; deeper blocks'
    weights are (M, in, out), for one batched GEMM."""

    def __init__(
        self, lin: nn.Linear, bn: nn.BatchNorm1d | None, M: int, first: bool, trainable: bool
    ):
        super().__init__()
        w = lin.weight.detach().T
        self.first = first
        self.weight = nn.Parameter(
            (
                w.unsqueeze(1).repeat(1, M, 1) if first else w.unsqueeze(0).repeat(M, 1, 1)
            ).contiguous(),
            requires_grad=trainable,
        )
        self.bias = nn.Parameter(lin.bias.detach().repeat(M, 1), requires_grad=trainable)
        self.has_bn = bn is not None
        if bn is not None:
            self.gamma = nn.Parameter(bn.weight.detach().repeat(M, 1), requires_grad=trainable)
            self.beta = nn.Parameter(bn.bias.detach().repeat(M, 1), requires_grad=trainable)
            self.register_buffer("running_mean", bn.running_mean.detach().repeat(M, 1))
            self.register_buffer("running_var", bn.running_var.detach().repeat(M, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.first:
            d_in, M, d_out = self.weight.shape
            h = (h @ self.weight.reshape(d_in, M * d_out) + self.bias.reshape(-1)).view(
                h.shape[0], M, d_out
            )
            h = h.transpose(0, 1)
        else:
            h = torch.baddbmm(self.bias.unsqueeze(1), h, self.weight)
        if self.has_bn:
            h = self._batchnorm(h, mask)
        return F.relu(h)

    def _batchnorm(self, h, mask, eps: float = 1e-5, momentum: float = 0.1):
        gamma, beta = self.gamma.unsqueeze(1), self.beta.unsqueeze(1)
        if mask is None:  # inference, or a frozen encoder: the statistics it was trained with
            return (h - self.running_mean.unsqueeze(1)) * torch.rsqrt(
                self.running_var.unsqueeze(1) + eps
            ) * gamma + beta
        w = mask.unsqueeze(2)
        n = w.sum(1)  # (M, 1)
        # a model with fewer than two rows in this batch trains on none of them (its loss weight
        # is 0): its statistics must stay finite (0/0 was NaN, and poisoned its running
        # statistics and weights for good) and its running statistics untouched
        mean = (h * w).sum(1) / n.clamp_min(1)
        var = (((h - mean.unsqueeze(1)) ** 2) * w).sum(1) / n.clamp_min(1)
        with torch.no_grad():  # as nn.BatchNorm1d: the running variance is unbiased
            step = momentum * (n >= 2).to(h.dtype)
            self.running_mean.lerp_(mean, step)
            self.running_var.lerp_(var * n / (n - 1).clamp_min(1), step)
        return (h - mean.unsqueeze(1)) * torch.rsqrt(var.unsqueeze(1) + eps) * gamma + beta

    def model_axis(self, name: str) -> int:
        return 1 if self.first and name == "weight" else 0


class StackedMLP(nn.Module):
    """M independent copies of an encoder (or none: a linear model on fixed features) plus a
    linear head, initialised from ``encoder`` (pretrained or random) and trained jointly."""

    def __init__(
        self,
        encoder: MLPEncoder | None,
        n_in: int,
        n_classes: int,
        n_models: int,
        *,
        freeze_encoder: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.n_models = M = int(n_models)
        self.n_drawn = M  # models whose dropout masks are drawn (those held and those stopped)
        self.members: torch.Tensor | None = None  # the held models' ids while some have left
        self.freeze_encoder = freeze_encoder
        self.dropout = 0.0
        width = n_in
        blocks: list = []
        if encoder is not None:
            pairs, self.dropout = _encoder_blocks(encoder)
            blocks = [
                _StackedBlock(lin, bn, M, i == 0, not freeze_encoder)
                for i, (lin, bn) in enumerate(pairs)
            ]
            width = pairs[-1][0].out_features
        self.blocks = nn.ModuleList(blocks)
        gen = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(width)  # nn.Linear's default initialisation, the same for every copy
        head_w = (torch.rand(width, n_classes, generator=gen) * 2 - 1) * bound
        head_b = (torch.rand(n_classes, generator=gen) * 2 - 1) * bound
        self.head_w = nn.Parameter(head_w.unsqueeze(0).repeat(M, 1, 1))
        self.head_b = nn.Parameter(head_b.unsqueeze(0).repeat(M, 1))

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks.parameters())

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        train: bool = False,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """Logits (M, n, classes) for shared input rows ``x`` (n, in). In training, ``mask`` (M, n)
        says which rows belong to each model's batch: its BatchNorm statistics use only those;
        ``rng`` draws the dropout masks."""
        train_encoder = train and not self.freeze_encoder
        h = x
        for block in self.blocks:
            h = block(h, mask if train_encoder else None)
            if train_encoder and self.dropout > 0:
                drawn = dropout_mask((self.n_drawn, *h.shape[1:]), self.dropout, rng, h.device)
                h = h * (drawn if self.members is None else drawn[self.members])
        if not len(self.blocks):
            h = x.unsqueeze(0).expand(self.n_models, *x.shape)
        return torch.baddbmm(self.head_b.unsqueeze(1), h, self.head_w)

    def state_tensors(self) -> list[tuple[torch.Tensor, int]]:
        """Every per-model tensor (parameters and running statistics) with its model axis."""
        out = [(self.head_w, 0), (self.head_b, 0)]
        for block in self.blocks:
            for name, t in [*block.named_parameters(), *block.named_buffers()]:
                out.append((t, block.model_axis(name)))
        return out

    @torch.no_grad()
    def keep_models(self, positions: torch.Tensor) -> None:
        """Hold only the models at ``positions`` (of those held now), in place: the same
        parameter objects, narrower along their model axis."""
        positions = positions.to(self.head_w.device)
        for t, ax in self.state_tensors():
            t.data = t.data.index_select(ax, positions)
        ids = torch.arange(self.n_drawn) if self.members is None else self.members
        self.members = ids[positions.cpu()]
        self.n_models = len(positions)

    @torch.no_grad()
    def hold_all(self, tensors: list[torch.Tensor]) -> None:
        """Hold every model again, from ``tensors`` (one per ``state_tensors()`` entry)."""
        for (t, _), full in zip(self.state_tensors(), tensors, strict=True):
            t.data = full
        self.members, self.n_models = None, self.n_drawn


@options_class("finetune")
@dataclass
class HeadRecipe:
    """How a head is trained (the fine-tuning recipe, shared by SSL fine-tuning and the MLP
    baseline so that pretraining is the only difference). Typed options: ``HeadRecipe.check``
    gives the same one-line errors as the methods' and training options."""

    epochs: int = option(
        100, "fine-tuning epochs (at most; early stopping on a validation part)", ge=1
    )
    lr: float = option(1e-3, "learning rate of the classification head", gt=0)
    encoder_lr: float | None = option(
        1e-4, "learning rate of the pretrained encoder (null: the head's)", gt=0
    )
    weight_decay: float = option(1e-4, "AdamW weight decay", ge=0)
    batch_size: int = option(32, "fine-tuning batch size", ge=1)
    patience: int = option(
        10,
        "epochs without validation improvement before stopping (epochs of over 32 batches: "
        "the epochs holding patience x 32 steps, at least 2)",
        ge=0,
    )

    @classmethod
    def check(cls, options: dict[str, Any] | None) -> HeadRecipe:
        return validate_options(cls, options, "finetune")


def patience_epochs(patience: int, batches: int) -> int:
    """Epochs without improvement before a model stops, for epochs of ``batches`` steps.

    What a model improves for is a few hundred optimizer steps, not a number of epochs (measured
    on seeded 19-class cohorts: 186-750 steps from 240 to 7,479 labelled rows), so ten epochs of
    234 batches (7,486 rows) waited 2,340 steps after the best, two thirds of the fit. Up to
    ``PATIENCE_BATCHES`` batches an epoch (1,024 rows of 32: every bundled cohort) the recipe's
    patience counts epochs as before; beyond, as many epochs as hold patience x
    ``PATIENCE_BATCHES`` steps, at least ``MIN_PATIENCE`` (validation loss on thousands of rows
    is smooth)."""
    if batches <= PATIENCE_BATCHES:
        return patience
    return min(patience, max(MIN_PATIENCE, math.ceil(patience * PATIENCE_BATCHES / batches)))


def _optimizer(net: StackedMLP, recipe: HeadRecipe, lr_scale: float) -> torch.optim.Optimizer:
    """AdamW with the head's and the encoder's learning rates, both scaled by ``lr_scale``."""
    enc_lr = recipe.encoder_lr if recipe.encoder_lr is not None else recipe.lr
    groups = [{"params": [net.head_w, net.head_b], "lr": recipe.lr * lr_scale}]
    if not net.freeze_encoder and net.encoder_parameters():
        groups.append({"params": net.encoder_parameters(), "lr": enc_lr * lr_scale})
    try:
        return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay, fused=True)
    except RuntimeError:  # no fused kernel for this device / torch
        return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)


def _masked_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Each model's mean cross-entropy over its own rows (weights ``w``, (M, n)): shape (M,)."""
    M = logits.shape[0]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(M), reduction="none").view(
        M, -1
    )
    return (ce * w).sum(1) / w.sum(1).clamp_min(1)


class _Kept:
    """Each model's weights to keep, for every model of the stack: its best so far (an indexed
    copy into preallocated buffers, not a deep copy of a state dict every improving epoch), or,
    for a model that leaves without one or never early-stops, its last."""

    def __init__(self, net: StackedMLP):
        self.tensors, self.axes = zip(*net.state_tensors(), strict=True)
        self.saved = [t.detach().clone() for t in self.tensors]

    @torch.no_grad()
    def save(self, net: StackedMLP, ids: torch.Tensor) -> None:
        """Copy models ``ids`` (among all) from the stack, which holds ``net.members``."""
        if not len(ids):
            return
        held = torch.arange(net.n_drawn) if net.members is None else net.members
        where = torch.full((net.n_drawn,), -1, dtype=torch.long)
        where[held] = torch.arange(len(held))
        ids_, pos = ids.to(self.saved[0].device), where[ids].to(self.saved[0].device)
        for t, s, ax in zip(self.tensors, self.saved, self.axes, strict=True):
            s.index_copy_(ax, ids_, t.detach().index_select(ax, pos))


@torch.no_grad()
def _leave(net: StackedMLP, opt: torch.optim.Optimizer, stay: torch.Tensor) -> None:
    """Models not in ``stay`` (a mask over those held) leave the stack and their optimizer
    state with them; the others' state is untouched, so they train on exactly as before."""
    positions = torch.nonzero(stay).view(-1)
    axes = {id(t): ax for t, ax in net.state_tensors()}
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if key != "step" and torch.is_tensor(value) and value.dim():
                    state[key] = value.index_select(axes[id(p)], positions.to(value.device))
    net.keep_models(positions)


def train_stacked(
    net: StackedMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    train_mask: torch.Tensor,
    val_mask: torch.Tensor | None,
    recipe: HeadRecipe,
    lr_scale: float = 1.0,
    seed: int = 0,
    only: torch.Tensor | None = None,
) -> np.ndarray:
    """Train the M models of ``net`` (on its parameters' device) on rows ``X``, labels ``y``;
    model m trains on rows ``train_mask[m]`` and early-stops on ``val_mask[m]`` (best weights
    restored; no validation rows: every epoch), then leaves the stack. ``lr_scale`` multiplies
    both learning rates (the tuned grid). ``only`` (a mask over the models) trains just those,
    the others' rows and dropout draws kept, so a model trains exactly as beside them
    (``fit_torch``'s chosen final model). Returns each best validation loss (inf: none)."""
    M, device = net.n_models, net.head_w.device
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)  # dropout
    opt = _optimizer(net, recipe, lr_scale)
    X, y = X.to(device), y.to(device)
    train_mask = train_mask.to(device).float()
    val_mask = torch.zeros_like(train_mask) if val_mask is None else val_mask.to(device).float()
    rows = torch.nonzero(train_mask.any(0)).view(-1).cpu()
    stops = (val_mask.sum(1) > 0).cpu()  # a model without validation rows runs every epoch
    best, bad = torch.full((M,), math.inf), torch.zeros(M, dtype=torch.long)
    kept = _Kept(net)
    left_out = torch.zeros(M, dtype=torch.bool) if only is None else ~only.cpu().bool()
    if left_out.all():
        return best.numpy()
    if left_out.any():
        _leave(net, opt, ~left_out)
    # equal batches of at most batch_size rows: a last batch of one or two rows (66 rows in
    # batches of 32) gave BatchNorm two-row statistics and a third of the epoch's steps
    n_batches = max(1, math.ceil(len(rows) / max(2, recipe.batch_size)))
    patience = patience_epochs(recipe.patience, n_batches)
    for _ in range(recipe.epochs):
        perm = rows[torch.randperm(len(rows), generator=gen)]
        _epoch(net, opt, X, y, train_mask, torch.tensor_split(perm.to(device), n_batches), rng)
        if not (stops & ~left_out).any():
            continue
        v = _validation_losses(net, X, y, val_mask)
        improved = stops & (v < best - 1e-4) & (bad < patience)
        kept.save(net, torch.nonzero(improved).view(-1))
        best = torch.where(improved, v, best)
        bad = torch.where(improved, torch.zeros_like(bad), bad + 1)
        done = left_out | (stops & (bad >= patience))
        held = torch.arange(M) if net.members is None else net.members
        if done[held].any():  # leaving without a best (never a finite loss): its last weights
            kept.save(net, held[done[held] & ~torch.isfinite(best[held])])
            if done.all():
                break
            _leave(net, opt, ~done[held])
    held = torch.arange(M) if net.members is None else net.members
    kept.save(net, held[~(stops[held] & torch.isfinite(best[held]))])  # the last weights
    net.hold_all(kept.saved)
    net.eval()
    return best.numpy()


def _epoch(net: StackedMLP, opt, X, y, train_mask, batches, rng) -> None:
    """One pass over ``batches`` (row indices), each model on its own rows of each batch."""
    net.train()
    for idx in batches:
        w = train_mask[:, idx]
        w = w * (w.sum(1, keepdim=True) >= 2)  # BatchNorm needs two rows of a model's own
        if w.any():  # as when every model was held: the held ones' momentum steps alike
            held = w if net.members is None else w[net.members.to(w.device)]
            opt.zero_grad(set_to_none=True)
            _masked_loss(net(X[idx], held, train=True, rng=rng), y[idx], held).sum().backward()
            opt.step()


@torch.no_grad()
def _validation_losses(net: StackedMLP, X, y, val_mask) -> torch.Tensor:
    """Each model's validation loss (M,), on the CPU; inf for a model no longer held."""
    held = None if net.members is None else net.members.to(val_mask.device)
    masks = val_mask if held is None else val_mask[held]
    val_rows = torch.nonzero(masks.any(0)).view(-1)
    net.eval()
    v = _masked_loss(net(X[val_rows]), y[val_rows], masks[:, val_rows]).cpu()
    if held is None:
        return v
    out = torch.full((net.n_drawn,), math.inf, dtype=v.dtype)
    out[held.cpu()] = v
    return out


def predict_proba(net: StackedMLP, X: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Class probabilities (M, n, classes) in eval mode, on the CPU (computed on ``net``'s
    device)."""
    net.eval()
    device = net.head_w.device
    with torch.no_grad():
        out = [
            torch.softmax(net(X[s : s + batch].to(device)), -1).cpu()
            for s in range(0, X.shape[0], batch)
        ]
    return (
        torch.cat(out, 1).numpy()
        if out
        else np.zeros((net.n_models, 0, net.head_w.shape[-1]), np.float32)
    )
