"""Augmentations for expression profiles, vectorised over the batch on the batch's device.

Every corruption is redrawn on every call (every batch), never once per run, and no function
loops over samples or genes in Python: the reference implementations of the paper do, which
makes their corruption the bottleneck of a training step.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .errors import ConfigError

Source = Literal["marginal", "uniform", "batch_permute"]
Mode = Literal["fixed", "bernoulli"]
SOURCES = ("marginal", "uniform", "batch_permute")
MODES = ("fixed", "bernoulli")


def corruption_mask(batch: int, n_genes: int, rate: float, mode: Mode = "fixed", *,
                    generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Boolean (batch, n_genes) mask of entries to corrupt.

    ``fixed``: exactly floor(rate * n_genes) genes in every row (the SCARF definition), drawn as
    the k smallest of uniform noise, via one ``topk`` per batch. ``bernoulli``: each entry
    independently with probability ``rate`` (the VIME definition).
    """
    if not 0 <= rate <= 1:
        raise ConfigError(f"corruption rate must be in [0, 1], got {rate}")
    noise = torch.rand(batch, n_genes, generator=generator, device=device)
    if mode == "bernoulli":
        return noise < rate
    if mode != "fixed":
        raise ConfigError(f"unknown corruption mode '{mode}'; available: {', '.join(MODES)}")
    k = int(rate * n_genes)
    mask = torch.zeros(batch, n_genes, dtype=torch.bool, device=noise.device)
    if k == 0:
        return mask
    if k == n_genes:
        return ~mask
    idx = noise.topk(k, dim=1, largest=False, sorted=False).indices
    return mask.scatter_(1, idx, True)


class Corruptor(nn.Module):
    """Replace a random subset of each sample's genes with values from a replacement source.

    Sources: ``marginal`` — the same gene's value in a random training sample (the original
    SCARF: a draw from the gene's empirical marginal); ``uniform`` — uniform between the gene's
    training min and max (the paper's code); ``batch_permute`` — the same gene's value in another
    sample of the batch (the paper's VIME/BYOL code).

    Training statistics are non-persistent buffers: they follow ``.to(device)`` but are not saved
    with the model (embedding never needs them).
    """

    def __init__(self, rate: float = 0.3, source: Source = "marginal", mode: Mode = "fixed",
                 max_pool: int = 20_000):
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(f"unknown replacement source '{source}'; available: {', '.join(SOURCES)}")
        if mode not in MODES:
            raise ConfigError(f"unknown corruption mode '{mode}'; available: {', '.join(MODES)}")
        if not 0 <= rate <= 1:
            raise ConfigError(f"corruption rate must be in [0, 1], got {rate}")
        self.rate, self.source, self.mode, self.max_pool = float(rate), source, mode, int(max_pool)
        self.register_buffer("pool", torch.empty(0), persistent=False)
        self.register_buffer("low", torch.empty(0), persistent=False)
        self.register_buffer("high", torch.empty(0), persistent=False)

    def fit(self, X: torch.Tensor, generator: torch.Generator | None = None) -> Corruptor:
        """Store what the source needs from the training rows; a pool is capped at ``max_pool`` rows."""
        X = torch.as_tensor(X, dtype=torch.float32)
        device = self.pool.device
        if self.source == "marginal":
            if X.shape[0] > self.max_pool:
                keep = torch.randperm(X.shape[0], generator=generator)[: self.max_pool]
                X = X[keep.to(X.device)]
            self.pool = X.detach().to(device).contiguous()
        elif self.source == "uniform":
            self.low = X.min(0).values.detach().to(device)
            self.high = X.max(0).values.detach().to(device)
        return self

    @property
    def is_fitted(self) -> bool:
        return self.source == "batch_permute" or self.pool.numel() > 0 or self.low.numel() > 0

    def replacement(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A full (batch, genes) matrix of candidate replacement values."""
        n, d = x.shape
        if self.source == "batch_permute":
            # an independent permutation of the rows per gene column (VIME's column shuffle)
            rows = torch.rand(n, d, generator=generator, device=x.device).argsort(dim=0)
            return x.gather(0, rows)
        if not self.is_fitted:
            raise RuntimeError(f"Corruptor(source='{self.source}') must be fit on training data first")
        if self.source == "marginal":
            rows = torch.randint(0, self.pool.shape[0], (n, d), generator=generator, device=x.device)
            return self.pool.gather(0, rows)
        u = torch.rand(n, d, generator=generator, device=x.device, dtype=x.dtype)
        return self.low + u * (self.high - self.low)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Return ``(x_corrupted, mask)``; ``mask`` marks the entries selected for corruption."""
        mask = corruption_mask(x.shape[0], x.shape[1], self.rate, self.mode, generator=generator,
                               device=x.device)
        return torch.where(mask, self.replacement(x, generator), x), mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}, source={self.source}, mode={self.mode}"


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def zero_mask(x: torch.Tensor, rate: float, generator: torch.Generator | None = None):
    """Set a Bernoulli(rate) subset of entries to 0 (dropout-like masking); returns (x, mask)."""
    mask = torch.rand(x.shape, generator=generator, device=x.device) < rate
    return x.masked_fill(mask, 0.0), mask


def binomial_thinning(counts: torch.Tensor, keep_prob: float | torch.Tensor) -> torch.Tensor:
    """Downsample raw counts as if sequenced less deeply: each read kept with ``keep_prob``.

    ``keep_prob`` may be a scalar or per-sample (batch, 1) to vary library size across samples.
    """
    p = torch.as_tensor(keep_prob, dtype=counts.dtype, device=counts.device).expand_as(counts)
    return torch.binomial(counts.clamp_min(0), p)
