"""Corruption draws the stated number of genes, from the stated source, anew every batch."""

from __future__ import annotations

import math

import pytest
import torch

from exprssl.augment import Corruptor, corruption_indices, gaussian_noise
from exprssl.errors import ConfigError


def corruption_mask(batch, n_genes, rate, mode="fixed", generator=None) -> torch.Tensor:
    """The (batch, n_genes) mask of ``corruption_indices``' entries."""
    mask = torch.zeros(batch * n_genes, dtype=torch.bool)
    mask[corruption_indices(batch, n_genes, rate, mode, generator)] = True
    return mask.view(batch, n_genes)


def test_fixed_mode_exact_count_per_row():
    for d, rate in ((100, 0.3), (37, 0.5), (20_000, 0.3), (10, 0.05)):
        m = corruption_mask(64, d, rate, "fixed")
        assert (m.sum(1) == math.floor(rate * d)).all()
    assert not corruption_mask(4, 10, 0.0).any() and corruption_mask(4, 10, 1.0).all()


def test_bernoulli_mode_rate():
    m = corruption_mask(500, 400, 0.3, "bernoulli", generator=torch.Generator().manual_seed(0))
    assert abs(m.float().mean().item() - 0.3) < 0.01
    assert m.sum(1).float().std() > 0  # not a fixed count


def test_fixed_mode_is_uniform_over_genes():
    m = corruption_mask(20_000, 10, 0.3, "fixed", generator=torch.Generator().manual_seed(1))
    freq = m.float().mean(0)
    assert torch.allclose(freq, torch.full((10,), 0.3), atol=0.015)


@pytest.fixture
def pool():
    torch.manual_seed(0)
    return torch.randn(50, 30) * torch.arange(1, 31) + 100 * torch.arange(
        30
    )  # gene j lives near 100*j


def test_marginal_values_come_from_same_gene_in_pool(pool):
    c = Corruptor(0.3, "marginal").fit(pool)
    x = torch.randn(16, 30)
    xc, mask = c(x)
    assert (mask.sum(1) == 9).all()
    assert torch.equal(xc[~mask], x[~mask])
    rows, cols = mask.nonzero(as_tuple=True)
    # each corrupted value equals that gene's value in some pool row (the gene's empirical marginal)
    hits = (pool[:, cols] == xc[rows, cols]).any(0)
    assert hits.all()


def test_marginal_draws_a_fresh_pool_row_per_entry():
    pool = (
        torch.arange(1000, dtype=torch.float32).unsqueeze(1).expand(1000, 500).contiguous()
    )  # row r holds r
    xc, mask = Corruptor(0.5, "marginal").fit(pool)(
        torch.full((8, 500), -1.0), generator=torch.Generator().manual_seed(0)
    )
    donors = xc[mask].long()
    assert donors.numel() == 2000 and donors.min() >= 0
    # 2,000 independent uniform draws over 1,000 rows hit ~1000 * (1 - e^-2) = 865 distinct rows
    assert 820 < donors.unique().numel() < 910


def test_uniform_values_within_gene_range(pool):
    c = Corruptor(0.5, "uniform").fit(pool)
    xc, mask = c(torch.zeros(32, 30))
    lo, hi = pool.min(0).values, pool.max(0).values
    rows, cols = mask.nonzero(as_tuple=True)
    v = xc[rows, cols]
    assert ((v >= lo[cols]) & (v <= hi[cols])).all()


def test_batch_permute_values_from_another_sample_same_gene():
    x = torch.arange(8 * 6, dtype=torch.float32).reshape(8, 6)  # every value distinct
    xc, mask = Corruptor(0.5, "batch_permute")(x)
    assert (mask.sum(1) == 3).all() and torch.equal(xc[~mask], x[~mask])
    for j in range(6):
        assert set(xc[:, j].tolist()) <= set(x[:, j].tolist())
    assert (xc[mask] != x[mask]).all()  # the donor is never the sample itself


def test_batch_permute_donors_cover_the_batch():
    x = (
        torch.arange(4, dtype=torch.float32).unsqueeze(1).expand(4, 3000).contiguous()
    )  # row i holds i
    xc, mask = Corruptor(0.5, "batch_permute")(x, generator=torch.Generator().manual_seed(0))
    donors = xc[0][mask[0]]
    counts = torch.bincount(donors.long(), minlength=4)
    assert counts[0] == 0 and (counts[1:] - 500).abs().max() < 100  # uniform over the 3 others


def test_torch_indexing_fallback_matches_sources(pool):
    """bfloat16 has no numpy view, so this runs the path used on GPU."""
    x = pool[:16].to(torch.bfloat16)
    for source in ("batch_permute", "marginal", "uniform", "zero"):
        xc, mask = Corruptor(0.3, source).fit(pool)(x)
        assert xc.dtype == torch.bfloat16 and (mask.sum(1) == 9).all()
        assert torch.equal(xc[~mask], x[~mask])
        if source == "zero":
            assert (xc[mask] == 0).all()


def test_redrawn_every_call_and_seedable(pool):
    c = Corruptor(0.3, "marginal").fit(pool)
    x = torch.randn(8, 30)
    _, m1 = c(x)
    _, m2 = c(x)
    assert not torch.equal(m1, m2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, _ = c(x, generator=g1)
    b, _ = c(x, generator=g2)
    assert torch.equal(a, b)


def test_draws_do_not_depend_on_thread_count(pool):
    """CPU corruption runs in seeded row chunks on a thread pool: same seed, same views, whatever
    the number of threads; and ``corruption_mask`` gives the entries ``Corruptor`` corrupts."""
    x = torch.randn(100, 30)  # several 32-row chunks
    threads = torch.get_num_threads()
    for source, mode in (
        ("marginal", "fixed"),
        ("batch_permute", "bernoulli"),
        ("uniform", "fixed"),
    ):
        c = Corruptor(0.3, source, mode).fit(pool)
        views = []
        for n in (1, 3):
            torch.set_num_threads(n)
            views.append(c(x, generator=torch.Generator().manual_seed(7)))
        torch.set_num_threads(threads)
        assert torch.equal(views[0][0], views[1][0]) and torch.equal(views[0][1], views[1][1])
        mask = corruption_mask(100, 30, 0.3, mode, generator=torch.Generator().manual_seed(7))
        assert torch.equal(mask, views[0][1])
        assert not torch.equal(views[0][1][:32], views[0][1][32:64])  # chunks draw independently


def test_every_chunk_copies_its_rows_and_edge_rates(pool):
    """Each 32-row chunk copies its own rows into the output: uncorrupted entries equal the
    input in every chunk, including a short last one; rates 0 and 1 are exact in both modes."""
    x = torch.randn(100, 30)
    for mode in ("fixed", "bernoulli"):
        xc, mask = Corruptor(0.3, "marginal", mode).fit(pool)(
            x, generator=torch.Generator().manual_seed(3)
        )
        assert torch.equal(xc[~mask], x[~mask])
        assert (xc[mask] != x[mask]).all()  # pool values live near 100*j, x near 0
        assert mask[96:].any() and 0.2 < mask.float().mean() < 0.4
        xc, mask = Corruptor(1.0, "zero", mode)(x)
        assert mask.all() and not xc.any()
        xc, mask = Corruptor(0.0, "zero", mode)(x)
        assert not mask.any() and torch.equal(xc, x)
    assert corruption_mask(
        3, 5, 1 - 1e-12, "bernoulli"
    ).all()  # rounds to the uint32 threshold 2^32


def test_pool_is_capped_and_not_saved(pool):
    c = Corruptor(0.3, "marginal", max_pool=20).fit(pool)
    assert c.pool.shape == (20, 30)
    assert c.state_dict() == {}


def test_errors():
    with pytest.raises(ConfigError, match="replacement must be one of 'marginal', .*, got 'noise'"):
        Corruptor(0.3, "noise")
    with pytest.raises(
        ConfigError, match=r"corruption_rate must be a finite number in \[0, 1\], got 1.3"
    ):
        Corruptor(1.3)
    with pytest.raises(
        ConfigError, match="corruption_mode must be one of 'fixed', 'bernoulli', got 'sometimes'"
    ):
        Corruptor(0.3, "zero", "sometimes")
    with pytest.raises(RuntimeError, match="fit"):
        Corruptor(0.3, "marginal")(torch.zeros(2, 3))


def test_gaussian_noise():
    torch.manual_seed(0)
    x = torch.zeros(1000, 50)
    assert abs(gaussian_noise(x, 0.5).std().item() - 0.5) < 0.01
    assert gaussian_noise(x, 0.0) is x
