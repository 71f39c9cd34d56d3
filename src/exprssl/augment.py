"""Augmentations for expression profiles, vectorised over the batch on the batch's device.

Every corruption is redrawn on every call (every batch), never once per run, and no function
loops over samples or genes in Python: the reference implementations of the paper do, which
makes their corruption the bottleneck of a training step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

Source = Literal["marginal", "uniform", "batch_permute", "zero"]
Mode = Literal["fixed", "bernoulli"]
SOURCES = ("marginal", "uniform", "batch_permute", "zero")
MODES = ("fixed", "bernoulli")


_CHUNK_ROWS = 32  # rows per independently seeded chunk of a CPU corruption: the draws depend
# on the seed only, never on how many threads process the chunks


def _chunk_rngs(
    generator: torch.Generator | None, rows: int
) -> list[tuple[int, int, np.random.Generator]]:
    """``(first_row, end_row, rng)`` per chunk of rows, each with its own PCG64 stream spawned
    from one draw of torch's RNG: reproducible under ``torch.manual_seed`` or an explicit
    generator, and about twice as fast as torch's CPU generator for bulk draws."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    starts = range(0, rows, _CHUNK_ROWS)
    seeds = np.random.SeedSequence(seed).spawn(len(starts))
    return [
        (r0, min(r0 + _CHUNK_ROWS, rows), np.random.default_rng(sq))
        for r0, sq in zip(starts, seeds, strict=True)
    ]


def _random_u32(rng: np.random.Generator, rows: int, d: int) -> np.ndarray:
    """Uniform uint32 keys straight from the bit generator: half the cost of float32 draws, and
    finer (float32 uniforms have 24 bits, so 20k keys per row tie about 12 times)."""
    n = rows * d
    return rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n].reshape(rows, d)


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None


def _run_chunks(work, chunks: list) -> list:
    """Run ``work`` over chunks on one thread per torch intra-op thread: numpy releases the GIL
    in the bulk draws, the selection and the gathers, so a 2-core step corrupts a batch in
    about half the time, instead of leaving a core idle while the other one corrupts."""
    global _POOL
    threads = min(torch.get_num_threads(), len(chunks))
    if threads <= 1:
        return [work(c) for c in chunks]
    if _POOL is None or _POOL[:2] != (os.getpid(), threads):  # a forked worker needs its own pool
        _POOL = (
            os.getpid(),
            threads,
            ThreadPoolExecutor(threads, thread_name_prefix="exprssl-corrupt"),
        )
    return list(_POOL[2].map(work, chunks))


def _as_numpy(t: torch.Tensor) -> np.ndarray | None:
    """A zero-copy numpy view of a CPU tensor, or None (GPU, bfloat16): numpy's fancy indexing
    gathers and scatters a batch's corrupted entries 2-30x faster than torch's CPU indexing."""
    if t.device.type != "cpu":
        return None
    try:
        return t.detach().numpy()
    except TypeError:
        return None


def _check(rate: float, mode: str) -> None:
    """The same checks and wording as the methods' options (``corruption_rate``,
    ``corruption_mode``); rates 0 and 1 are allowed here (no / full corruption), methods ask for
    a rate in (0, 1)."""
    if not 0 <= rate <= 1:
        raise ConfigError(f"corruption_rate must be a finite number in [0, 1], got {rate!r}")
    if mode not in MODES:
        raise ConfigError(
            f"corruption_mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}"
        )


def _select_numpy(
    rng: np.random.Generator,
    rows: int,
    d: int,
    rate: float,
    mode: str,
    need_cols: bool = True,
    mask: np.ndarray | None = None,
):
    """Flat row-major indices (within the chunk) and gene indices of the entries to corrupt, and
    the chunk's dense mask written into ``mask`` when given. In bernoulli mode the gene indices
    cost a modulo over every entry, so only when ``need_cols``."""
    if mode == "bernoulli":
        threshold = round(rate * 2**32)  # P(key < threshold) = rate up to 2^-32
        if threshold >= 2**32:
            hit = np.ones((rows, d), dtype=bool) if mask is None else mask
            hit[...] = True
        else:
            hit = np.less(_random_u32(rng, rows, d), np.uint32(threshold), out=mask)
        flat = np.flatnonzero(hit)
        return flat, (flat % d if need_cols else None)
    if mask is not None:
        mask[...] = False
    k = int(rate * d)
    if k == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if k == d:
        cols = np.broadcast_to(np.arange(d), (rows, d))
    else:
        cols = np.argpartition(_random_u32(rng, rows, d), k - 1, axis=1)[:, :k]
    flat = (cols + np.arange(rows)[:, None] * d).reshape(-1)
    if mask is not None:
        mask.reshape(-1)[flat] = True
    return flat, cols.reshape(-1)


def _select_torch(generator, batch: int, d: int, rate: float, mode: str, device) -> torch.Tensor:
    if mode == "bernoulli":
        return (
            (torch.rand(batch, d, generator=generator, device=device) < rate)
            .view(-1)
            .nonzero()
            .view(-1)
        )
    k = int(rate * d)
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if k == d:
        return torch.arange(batch * d, device=device)
    keys = torch.rand(batch, d, generator=generator, device=device)
    cols = keys.topk(k, dim=1, largest=False, sorted=False).indices
    return (cols + torch.arange(batch, device=device).unsqueeze(1) * d).view(-1)


def corruption_indices(
    batch: int,
    n_genes: int,
    rate: float,
    mode: Mode = "fixed",
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """Flat (row * n_genes + gene) indices of the entries to corrupt, row-major.

    ``fixed``: exactly floor(rate * n_genes) genes in every row (the SCARF definition): the k
    smallest of per-entry uniform uint32 keys, by a linear-time ``argpartition`` on CPU (10 ms
    at 256 x 20k, vs 70 ms for torch ``topk``, 115 ms ``kthvalue``, 300 ms ``argsort``),
    ``topk`` on GPU. ``bernoulli``: each entry independently with probability ``rate`` (the VIME
    definition). Indices rather than a dense mask let callers draw replacement values for the
    corrupted entries only. On CPU these are the entries ``Corruptor`` corrupts for the same seed.
    """
    _check(rate, mode)
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type != "cpu":
        return _select_torch(generator, batch, n_genes, rate, mode, device)
    chunks = _chunk_rngs(generator, batch)
    parts = _run_chunks(
        lambda c: (
            _select_numpy(c[2], c[1] - c[0], n_genes, rate, mode, need_cols=False)[0]
            + c[0] * n_genes
        ),
        chunks,
    )
    return torch.from_numpy(np.concatenate(parts) if parts else np.empty(0, dtype=np.int64))


class Corruptor(nn.Module):
    """Replace a random subset of each sample's genes with values from a replacement source.

    Sources: ``marginal`` — the same gene's value in a random row of a training pool (the
    original SCARF: a draw from the gene's empirical marginal); ``uniform`` — uniform between the
    gene's training min and max (the paper's code); ``batch_permute`` — the same gene's value in
    another, random sample of the batch, drawn independently per entry (VIME's column-wise
    shuffle without sorting a key matrix, and never the sample itself, so the value does change
    unless two samples share it); ``zero`` — 0, i.e. masking (on z-scored data: the gene's mean).

    Training statistics are non-persistent buffers: they follow ``.to(device)`` but are not saved
    with the model (embedding never needs them). The marginal pool keeps at most ``max_pool``
    training rows, drawn without replacement (20,000 x 20k genes is 1.6 GB of float32): enough
    rows to represent each gene's marginal, a bounded memory cost at ARCHS4 scale.
    """

    def __init__(
        self,
        rate: float = 0.3,
        source: Source = "marginal",
        mode: Mode = "fixed",
        max_pool: int = 20_000,
    ):
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(
                f"replacement must be one of {', '.join(map(repr, SOURCES))}, got {source!r}"
            )
        _check(rate, mode)
        self.rate, self.source, self.mode, self.max_pool = float(rate), source, mode, int(max_pool)
        self.register_buffer("pool", torch.empty(0), persistent=False)
        self.register_buffer("low", torch.empty(0), persistent=False)
        self.register_buffer("span", torch.empty(0), persistent=False)

    def fit(self, X: torch.Tensor, generator: torch.Generator | None = None) -> Corruptor:
        """Store what the source needs from the training rows (nothing for batch_permute / zero)."""
        X = torch.as_tensor(X, dtype=torch.float32)
        device = self.pool.device
        if self.source == "marginal":
            if X.shape[0] > self.max_pool:
                keep = torch.randperm(X.shape[0], generator=generator)[: self.max_pool]
                X = X[keep.to(X.device)]
            self.pool = X.detach().to(device).contiguous()
        elif self.source == "uniform":
            low, high = X.min(0).values.detach(), X.max(0).values.detach()
            self.low, self.span = low.to(device), (high - low).to(device)
        return self

    @property
    def is_fitted(self) -> bool:
        return (
            self.source in ("batch_permute", "zero")
            or self.pool.numel() > 0
            or self.low.numel() > 0
        )

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                f"Corruptor(source='{self.source}') must be fit on training data first"
            )

    def _replacement_torch(self, x: torch.Tensor, flat: torch.Tensor, generator) -> torch.Tensor:
        """Replacement values for the flat indices ``flat`` of ``x`` (accelerator path)."""
        n, (batch, d) = flat.numel(), x.shape
        if self.source == "zero":
            return torch.zeros(n, dtype=x.dtype, device=x.device)
        if self.source == "batch_permute":
            if batch == 1:
                return x.reshape(-1)[flat]
            # donor row = own row + a random offset in [1, batch) (mod batch): another sample
            donor = flat + torch.randint(1, batch, (n,), generator=generator, device=x.device) * d
            return x.reshape(-1)[torch.where(donor >= batch * d, donor - batch * d, donor)]
        cols = flat % d
        if self.source == "marginal":
            rows = torch.randint(0, self.pool.shape[0], (n,), generator=generator, device=x.device)
            return self.pool.reshape(-1)[rows * d + cols].to(x.dtype)
        u = torch.rand(n, generator=generator, device=x.device).to(x.dtype)
        return self.low[cols].to(x.dtype) + u * self.span[cols].to(x.dtype)

    def _corrupt_chunk(
        self, x: np.ndarray, out: np.ndarray, mask: np.ndarray, stats: tuple, chunk
    ) -> None:
        """Copy rows ``r0:r1`` of ``x`` into ``out`` and corrupt them there, writing their
        ``mask`` (numpy views, CPU path); ``stats`` holds the fitted pool, or low and span."""
        r0, r1, rng = chunk
        batch, d = x.shape
        out[r0:r1] = x[r0:r1]
        flat, cols = _select_numpy(
            rng,
            r1 - r0,
            d,
            self.rate,
            self.mode,
            need_cols=self.source in ("marginal", "uniform"),
            mask=mask[r0:r1],
        )
        n = flat.size
        if self.source == "zero":
            values = 0.0
        elif self.source == "batch_permute":
            if batch == 1:
                values = x.reshape(-1)[flat]
            else:  # donor row = own row + a random offset in [1, batch) (mod batch): another sample
                donor = flat + (r0 + rng.integers(1, batch, n)) * d
                donor[donor >= batch * d] -= batch * d
                values = x.reshape(-1)[donor]
        elif self.source == "marginal":
            (pool,) = stats
            rows = rng.integers(0, pool.shape[0], n)
            rows *= d
            rows += cols
            values = pool.reshape(-1)[rows]
        else:
            low, span = stats
            values = (
                low[cols] + rng.random(n, dtype=np.float32).astype(x.dtype, copy=False) * span[cols]
            )
        out[r0:r1].reshape(-1)[flat] = values

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Return ``(x_corrupted, mask)``; ``mask`` marks the entries selected for corruption."""
        if x.ndim != 2:
            raise ValueError(
                f"Corruptor expects a (batch, genes) matrix, got shape {tuple(x.shape)}"
            )
        if self.source in ("marginal", "uniform"):
            self._require_fit()
        x = x.detach().contiguous()
        x_np = _as_numpy(x)
        if x_np is None:  # GPU or a dtype numpy lacks (bfloat16): torch indexing
            x_corrupt = x.clone()
            mask = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
            flat = corruption_indices(
                x.shape[0], x.shape[1], self.rate, self.mode, generator, x.device
            )
            x_corrupt.view(-1)[flat] = self._replacement_torch(x, flat, generator).to(x.dtype)
            mask.view(-1)[flat] = True
            return x_corrupt, mask
        # CPU: every chunk copies, selects and replaces its own rows on the thread pool
        x_corrupt, mask = torch.empty_like(x), torch.empty(x.shape, dtype=torch.bool)
        fitted = {"marginal": (self.pool,), "uniform": (self.low, self.span)}.get(self.source, ())
        stats = tuple(t.to(x.dtype).numpy() for t in fitted)
        out_np, mask_np = x_corrupt.numpy(), mask.numpy()
        _run_chunks(
            lambda c: self._corrupt_chunk(x_np, out_np, mask_np, stats, c),
            _chunk_rngs(generator, x.shape[0]),
        )
        return x_corrupt, mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}, source={self.source}, mode={self.mode}"


def gaussian_noise(
    x: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
