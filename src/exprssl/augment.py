"""Augmentations for expression profiles, vectorised over the batch on the batch's device.

Every corruption is redrawn on every call (every batch), never once per run, and no function
loops over samples or genes in Python: the reference implementations of the paper do, which
makes their corruption the bottleneck of a training step.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

Source = Literal["marginal", "uniform", "batch_permute", "zero"]
Mode = Literal["fixed", "bernoulli"]
SOURCES = ("marginal", "uniform", "batch_permute", "zero")
MODES = ("fixed", "bernoulli")


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A PCG64 stream seeded from torch's RNG: about twice as fast as torch's CPU generator for
    bulk draws, and still reproducible under ``torch.manual_seed`` or an explicit generator."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def corruption_indices(batch: int, n_genes: int, rate: float, mode: Mode = "fixed", *,
                       generator: torch.Generator | None = None, device=None):
    """Row and column indices (flat, equal length) of the entries to corrupt.

    ``fixed``: exactly floor(rate * n_genes) genes in every row (the SCARF definition), the k
    smallest of per-entry uniform keys: a linear-time ``argpartition`` on CPU, ``topk`` on GPU.
    ``bernoulli``: each entry independently with probability ``rate`` (the VIME definition).
    Returning indices rather than a dense mask lets callers draw replacement values for the
    corrupted entries only (30% of them at the default rate).
    """
    if not 0 <= rate <= 1:
        raise ConfigError(f"corruption rate must be in [0, 1], got {rate}")
    if mode not in MODES:
        raise ConfigError(f"unknown corruption mode '{mode}'; available: {', '.join(MODES)}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    on_cpu = device.type == "cpu"
    if mode == "bernoulli":
        if on_cpu:
            hit = torch.from_numpy(_numpy_rng(generator).random((batch, n_genes), dtype=np.float32) < rate)
        else:
            hit = torch.rand(batch, n_genes, generator=generator, device=device) < rate
        rows, cols = hit.nonzero(as_tuple=True)
        return rows, cols
    k = int(rate * n_genes)
    if k == 0:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    if on_cpu:
        if k == n_genes:
            cols = torch.arange(n_genes).repeat(batch)
        else:
            keys = _numpy_rng(generator).random((batch, n_genes), dtype=np.float32)
            cols = torch.from_numpy(np.argpartition(keys, k - 1, axis=1)[:, :k].astype(np.int64).ravel())
    else:
        noise = torch.rand(batch, n_genes, generator=generator, device=device)
        cols = noise.topk(k, dim=1, largest=False, sorted=False).indices.reshape(-1)
    rows = torch.arange(batch, device=device).repeat_interleave(k)
    return rows, cols.to(device)


def corruption_mask(batch: int, n_genes: int, rate: float, mode: Mode = "fixed", *,
                    generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Boolean (batch, n_genes) mask of entries to corrupt (see ``corruption_indices``)."""
    rows, cols = corruption_indices(batch, n_genes, rate, mode, generator=generator, device=device)
    mask = torch.zeros(batch, n_genes, dtype=torch.bool, device=rows.device)
    mask[rows, cols] = True
    return mask


class Corruptor(nn.Module):
    """Replace a random subset of each sample's genes with values from a replacement source.

    Sources: ``marginal`` — the same gene's value in a random training sample (the original
    SCARF: a draw from the gene's empirical marginal); ``uniform`` — uniform between the gene's
    training min and max (the paper's code); ``batch_permute`` — the same gene's value in another
    sample of the batch (the paper's VIME/BYOL code); ``zero`` — 0, i.e. masking (on z-scored
    data, the gene's training mean).

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
        return self.source in ("batch_permute", "zero") or self.pool.numel() > 0 or self.low.numel() > 0

    def _randint(self, high: int, n: int, generator, device) -> torch.Tensor:
        if device.type == "cpu":
            return torch.from_numpy(_numpy_rng(generator).integers(0, high, n))
        return torch.randint(0, high, (n,), generator=generator, device=device)

    def replacement(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Replacement values for the entries (rows[i], cols[i]) only."""
        n, d = rows.numel(), x.shape[1]
        if self.source == "zero":
            return torch.zeros(n, dtype=x.dtype, device=x.device)
        if self.source == "batch_permute":
            # the same gene in a uniformly random row of the batch: per entry, the same law as
            # VIME's per-column permutation, without sorting a (batch x genes) key matrix
            donor = self._randint(x.shape[0], n, generator, x.device)
            return x.reshape(-1)[donor * d + cols]
        if not self.is_fitted:
            raise RuntimeError(f"Corruptor(source='{self.source}') must be fit on training data first")
        if self.source == "marginal":
            # each entry takes its gene's value in a uniformly random pool row; drawn via a random
            # block of <= 256 donor rows per batch so the gather stays in cache (each donor is
            # still uniform over the pool, so every value is a draw from the gene's marginal)
            n_pool = self.pool.shape[0]
            block = self._randint(n_pool, min(256, n_pool), generator, x.device)
            donor = block[self._randint(block.numel(), n, generator, x.device)]
            return self.pool.reshape(-1)[donor * d + cols]
        if x.device.type == "cpu":
            u = torch.from_numpy(_numpy_rng(generator).random(n, dtype=np.float32)).to(x.dtype)
        else:
            u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
        return self.low[cols] + u * (self.high[cols] - self.low[cols])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Return ``(x_corrupted, mask)``; ``mask`` marks the entries selected for corruption."""
        rows, cols = corruption_indices(x.shape[0], x.shape[1], self.rate, self.mode, generator=generator,
                                        device=x.device)
        flat = rows * x.shape[1] + cols
        x_corrupt = x.clone()
        x_corrupt.view(-1).index_copy_(0, flat, self.replacement(x, rows, cols, generator).to(x.dtype))
        mask = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        mask.view(-1)[flat] = True
        return x_corrupt, mask

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
