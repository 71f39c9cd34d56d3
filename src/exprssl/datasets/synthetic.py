"""Seeded synthetic bulk RNA-seq with planted class structure, for tests and speed runs."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ConfigError


def synthetic(n_samples: int = 1000, n_genes: int = 2000, n_classes: int = 4, *,
              n_informative: int = 200, module_size: int = 20, effect_size: float = 0.5,
              counts: bool = True, library_size: tuple[float, float] = (5e6, 2e7),
              dispersion: float = 0.2, n_groups: int | None = None, n_batches: int = 1,
              batch_effect: float = 0.0, seed: int = 0) -> ad.AnnData:
    """Negative-binomial counts whose informative genes move in co-expressed modules by class.

    Generative model (per sample i, gene g):

    - baseline abundance p_g ~ log-normal (a few genes dominate, most are low, as in RNA-seq);
    - ``n_informative`` genes form modules of ``module_size``; module activity
      a_im = effect_size * c_{y_i, m} + N(0, 0.5) + group effect + batch effect, with class
      centres c ~ N(0, 1): classes differ along a low-dimensional latent, not gene by gene;
    - log-fold-change lfc_ig = w_g * a_i,module(g), loadings w_g ~ ±U(0.3, 1);
    - counts ~ NB(mean = L_i * p_g * exp(lfc_ig), dispersion) via a Poisson-gamma mixture,
      library size L_i ~ U(library_size).

    ``counts=False`` returns log2(CPM + 1) floats instead, with log-normal noise in place of the
    Poisson-gamma draws (10,000 x 20,000 in a few seconds; counts take ~20 s). ``obs`` has ``label`` ("class_0", ...),
    ``group`` (patient-like, several samples each, nested in a class) and ``batch``.
    Deterministic from ``seed``; float32 throughout.
    """
    if n_classes < 2 or n_samples < n_classes:
        raise ConfigError(f"synthetic: need n_classes >= 2 and n_samples >= n_classes, got "
                          f"{n_classes} classes for {n_samples} samples")
    n_informative = min(n_informative, n_genes)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    n_groups = n_groups or max(n_classes, n_samples // 4)
    # groups nested in classes: a group (patient) never spans two classes
    group = np.empty(n_samples, dtype=np.int64)
    per_class = max(1, n_groups // n_classes)
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        group[idx] = c * per_class + rng.integers(0, per_class, idx.size)
    batch = rng.integers(0, n_batches, n_samples)

    n_modules = max(1, n_informative // module_size)
    centers = rng.normal(0, 1, (n_classes, n_modules)).astype(np.float32)
    group_shift = rng.normal(0, 0.3, (group.max() + 1, n_modules)).astype(np.float32)
    batch_shift = rng.normal(0, batch_effect, (n_batches, n_modules)).astype(np.float32)
    activity = (effect_size * centers[y] + rng.normal(0, 0.5, (n_samples, n_modules)).astype(np.float32)
                + group_shift[group] + batch_shift[batch])

    genes = rng.permutation(n_genes)[: n_modules * module_size]
    module_of = np.repeat(np.arange(n_modules), module_size)
    weights = (rng.choice([-1.0, 1.0], genes.size) * rng.uniform(0.3, 1.0, genes.size)).astype(np.float32)

    log_p = rng.normal(0, 1.6, n_genes).astype(np.float32)
    log_mean = np.broadcast_to(log_p, (n_samples, n_genes)).copy()
    log_mean[:, genes] += activity[:, module_of] * weights
    if batch_effect > 0:  # batches also shift baseline expression of random genes
        log_mean += rng.normal(0, batch_effect * 0.3, (n_batches, n_genes)).astype(np.float32)[batch]
    mean = np.exp(log_mean - log_mean.max(1, keepdims=True), dtype=np.float32)
    lib = rng.uniform(*library_size, n_samples).astype(np.float32)
    mean *= (lib / mean.sum(1))[:, None]
    if counts:
        shape = 1.0 / dispersion
        gamma = rng.standard_gamma(shape, mean.shape, dtype=np.float32) * (mean / shape)
        X = rng.poisson(gamma).astype(np.float32)
    else:  # log-normal approximation of the NB noise: no gamma/Poisson draws, several times faster
        X = mean * np.exp(rng.standard_normal(mean.shape, dtype=np.float32) * np.sqrt(dispersion))
        X = np.log2(X / X.sum(1, keepdims=True) * 1e6 + 1, dtype=np.float32)

    obs = pd.DataFrame({
        "label": pd.Categorical([f"class_{k}" for k in y]),
        "group": pd.Categorical([f"patient_{g}" for g in group]),
        "batch": pd.Categorical([f"batch_{b}" for b in batch]),
    }, index=[f"sample_{i}" for i in range(n_samples)])
    var = pd.DataFrame({"informative": np.isin(np.arange(n_genes), genes)},
                       index=[f"GENE{g:05d}" for g in range(n_genes)])
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["exprssl"] = {"source": f"synthetic(seed={seed})", "format": "synthetic"}
    return adata
