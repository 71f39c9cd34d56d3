"""Seeded synthetic bulk RNA-seq with planted structure: class modules for tests and speed runs
(``synthetic``), and a latent-programme model whose answer is known, the benchmark's positive and
negative control (``latent_programmes``)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ConfigError

LABEL_MODES = ("structured", "random")


def synthetic(
    n_samples: int = 1000,
    n_genes: int = 2000,
    n_classes: int = 4,
    *,
    n_informative: int = 200,
    module_size: int = 20,
    effect_size: float = 0.5,
    counts: bool = True,
    library_size: tuple[float, float] = (5e6, 2e7),
    dispersion: float = 0.2,
    n_groups: int | None = None,
    n_batches: int = 1,
    batch_effect: float = 0.0,
    seed: int = 0,
) -> ad.AnnData:
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
    Poisson-gamma draws (10,000 x 20,000 in a few seconds; counts take ~20 s). ``obs`` has
    ``label`` ("class_0", ...), ``group`` (patient-like, several samples each, nested in a class)
    and ``batch``. Deterministic from ``seed``; float32 throughout.

    Parameters
    ----------
    n_samples, n_genes, n_classes
        The table's size and the number of classes.
    n_informative
        Genes whose expression depends on the class.
    module_size
        Genes per co-expressed module.
    effect_size
        Scale of the class effect on module activity.
    counts
        Return NB counts; False returns log2(CPM + 1).
    library_size
        Range of the uniform library sizes.
    dispersion
        The negative binomial's dispersion.
    n_groups
        Patient-like groups nested in classes; None for max(n_classes, n_samples // 4).
    n_batches
        Number of batches.
    batch_effect
        Scale of the batch effect on module activity.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        n_samples x n_genes, float32.
    """
    if n_classes < 2 or n_samples < n_classes:
        raise ConfigError(
            f"synthetic: need n_classes >= 2 and n_samples >= n_classes, got "
            f"{n_classes} classes for {n_samples} samples"
        )
    n_informative = min(n_informative, n_genes)
    rng = np.random.default_rng(seed)
    y, group, batch = _design(rng, n_samples, n_classes, n_groups, n_batches)
    n_modules = max(1, n_informative // module_size)
    centers = rng.normal(0, 1, (n_classes, n_modules)).astype(np.float32)
    group_shift = rng.normal(0, 0.3, (group.max() + 1, n_modules)).astype(np.float32)
    batch_shift = rng.normal(0, batch_effect, (n_batches, n_modules)).astype(np.float32)
    activity = (
        effect_size * centers[y]
        + rng.normal(0, 0.5, (n_samples, n_modules)).astype(np.float32)
        + group_shift[group]
        + batch_shift[batch]
    )

    genes = rng.permutation(n_genes)[: n_modules * module_size]
    module_of = np.repeat(np.arange(n_modules), module_size)
    weights = (rng.choice([-1.0, 1.0], genes.size) * rng.uniform(0.3, 1.0, genes.size)).astype(
        np.float32
    )

    log_p = rng.normal(0, 1.6, n_genes).astype(np.float32)
    log_mean = np.broadcast_to(log_p, (n_samples, n_genes)).copy()
    log_mean[:, genes] += activity[:, module_of] * weights
    if batch_effect > 0:  # batches also shift baseline expression of random genes
        log_mean += rng.normal(0, batch_effect * 0.3, (n_batches, n_genes)).astype(np.float32)[
            batch
        ]
    mean = np.exp(log_mean - log_mean.max(1, keepdims=True), dtype=np.float32)
    lib = rng.uniform(*library_size, n_samples).astype(np.float32)
    mean *= (lib / mean.sum(1))[:, None]
    X = _noisy_values(rng, mean, counts, dispersion)
    obs = pd.DataFrame(
        {
            "label": pd.Categorical([f"class_{k}" for k in y]),
            "group": pd.Categorical([f"patient_{g}" for g in group]),
            "batch": pd.Categorical([f"batch_{b}" for b in batch]),
        },
        index=[f"sample_{i}" for i in range(n_samples)],
    )
    var = pd.DataFrame(
        {"informative": np.isin(np.arange(n_genes), genes)},
        index=[f"GENE{g:05d}" for g in range(n_genes)],
    )
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["exprssl"] = {"source": f"synthetic(seed={seed})", "format": "synthetic"}
    return adata


def _design(
    rng: np.random.Generator, n_samples: int, n_classes: int, n_groups: int | None, n_batches: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced, shuffled classes; patient-like groups nested in classes (a group never spans
    two classes); batches at random."""
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    n_groups = n_groups or max(n_classes, n_samples // 4)
    group = np.empty(n_samples, dtype=np.int64)
    per_class = max(1, n_groups // n_classes)
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        group[idx] = c * per_class + rng.integers(0, per_class, idx.size)
    return y, group, rng.integers(0, n_batches, n_samples)


def _noisy_values(
    rng: np.random.Generator, mean: np.ndarray, counts: bool, dispersion: float
) -> np.ndarray:
    """Negative-binomial counts around ``mean`` (a Poisson-gamma mixture), or log2(CPM + 1) of
    log-normal noise, the faster approximation, when not ``counts``."""
    if counts:
        shape = 1.0 / dispersion
        gamma = rng.standard_gamma(shape, mean.shape, dtype=np.float32) * (mean / shape)
        return rng.poisson(gamma).astype(np.float32)
    X = mean * np.exp(rng.standard_normal(mean.shape, dtype=np.float32) * np.sqrt(dispersion))
    return np.log2(X / X.sum(1, keepdims=True) * 1e6 + 1, dtype=np.float32)


def _class_centres(
    rng: np.random.Generator, n_classes: int, n_programmes: int, separation: float
) -> np.ndarray:
    """Class centres in programme space, ``separation`` apart: orthogonal directions when there
    are at least as many programmes as classes (all pairs equally far), else random directions."""
    g = rng.normal(size=(max(n_classes, n_programmes), n_programmes))
    if n_classes <= n_programmes:
        directions = np.linalg.qr(g.T)[0].T[:n_classes]
    else:
        directions = g[:n_classes] / np.linalg.norm(g[:n_classes], axis=1, keepdims=True)
    return directions * (separation / np.sqrt(2))


def latent_programmes(
    n_samples: int = 1500,
    n_genes: int = 1000,
    n_classes: int = 4,
    *,
    labels: str = "structured",
    n_programmes: int = 4,
    n_nuisance: int = 1,
    genes_per_programme: int = 40,
    separation: float = 4.0,
    effect_size: float = 0.25,
    library_size: float = 2e6,
    library_spread: float = 0.4,
    dispersion: float = 0.2,
    unlabeled_fraction: float = 0.0,
    seed: int = 0,
) -> ad.AnnData:
    """Counts driven by a few latent programmes, with a label known to depend on them: the
    benchmark's positive control (``labels="structured"``) and negative control (``"random"``).

    Generative model (sample i, gene g):

    - latent state z_i: ``n_programmes`` label programmes around one of ``n_classes`` centres
      (``separation`` apart, unit spread, so states form overlapping clusters), plus
      ``n_nuisance`` programmes ~ N(0, 1) unrelated to the label (biology the label ignores);
    - label y_i = the centre nearest to z_i's label programmes: a deterministic, piecewise-linear
      function of the latent state (argmax of an affine map of z_i). ``"random"`` permutes these
      labels across samples: same class counts, independent of the expression;
    - ``genes_per_programme`` genes per programme (disjoint modules) with loadings ±U(0.5, 1); all
      other genes are background that carries no signal;
    - log mean = log abundance_g (~N(0, 1.5): a few genes dominate) + effect_size * loadings . z_i,
      scaled to a library size L_i = library_size * exp(N(0, library_spread));
    - counts ~ negative binomial (Poisson-gamma) with gene-wise dispersion
      ``dispersion`` * exp(N(0, 0.5)), so the default preprocessing applies CPM and log;
    - a random ``unlabeled_fraction`` of samples has no label (NaN): the many unlabeled profiles
      beside few labelled ones that SSL exists to use (the same samples in both label modes).

    Per gene the signal is weak against the noise (most of its variance is noise), but each
    programme is shared by many genes: a model that recovers the programmes from unlabeled
    samples predicts the label from a few labels; a classifier on the raw genes needs many more.
    ``obsm["programmes"]`` holds the true z (the oracle's features), ``var["programme"]`` each
    gene's programme or "background", ``var["loading"]`` its loading (0 for background) and
    ``var["drives_label"]`` whether it belongs to a label programme: the genes an attribution
    method should find for a structured label (none drive a ``"random"`` one);
    ``uns["exprssl"]["label_programmes"]`` names the programmes the label depends on.
    Deterministic from ``seed``; float32 throughout.

    Parameters
    ----------
    n_samples, n_genes, n_classes
        The table's size and the number of classes.
    labels
        ``"structured"`` or ``"random"``.
    n_programmes
        Label programmes.
    n_nuisance
        Programmes unrelated to the label.
    genes_per_programme
        Genes loaded on each programme.
    separation
        Distance between class centres in the latent space.
    effect_size
        Scale of the programmes' effect on log expression.
    library_size, library_spread
        Median library size and the spread of its log.
    dispersion
        Median gene-wise dispersion.
    unlabeled_fraction
        Fraction of samples with a missing label.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        n_samples x n_genes, float32 counts.
    """
    _check_programme_options(
        labels,
        n_samples,
        n_genes,
        n_classes,
        n_programmes,
        n_nuisance,
        genes_per_programme,
        unlabeled_fraction,
    )
    n_total = n_programmes + n_nuisance
    rng = np.random.default_rng(seed)
    centres = _class_centres(rng, n_classes, n_programmes, separation)
    state = rng.integers(0, n_classes, n_samples)
    z = np.concatenate(
        [
            centres[state] + rng.normal(size=(n_samples, n_programmes)),
            rng.normal(size=(n_samples, n_nuisance)),
        ],
        axis=1,
    ).astype(np.float32)
    y = ((z[:, None, :n_programmes] - centres[None]) ** 2).sum(-1).argmin(1)

    genes = rng.permutation(n_genes)[: n_total * genes_per_programme]
    programme_of = np.repeat(np.arange(n_total), genes_per_programme)
    loadings = np.zeros((n_total, n_genes), dtype=np.float32)
    loadings[programme_of, genes] = rng.choice([-1.0, 1.0], genes.size) * rng.uniform(
        0.5, 1.0, genes.size
    )

    log_mean = rng.normal(0, 1.5, n_genes).astype(np.float32) + np.float32(effect_size) * (
        z @ loadings
    )
    mean = np.exp(log_mean - log_mean.max(1, keepdims=True))
    lib = library_size * np.exp(rng.normal(0, library_spread, n_samples))
    mean *= (lib / mean.sum(1, dtype=np.float64)).astype(np.float32)[:, None]
    shape = (1.0 / (dispersion * np.exp(rng.normal(0, 0.5, n_genes)))).astype(np.float32)
    gamma = rng.standard_gamma(np.broadcast_to(shape, mean.shape), dtype=np.float32) * (
        mean / shape
    )
    X = rng.poisson(gamma).astype(np.float32)
    unlabeled = rng.random(n_samples) < unlabeled_fraction
    if (
        labels == "random"
    ):  # drawn last: the negative control has exactly the positive control's counts
        y = rng.permutation(y)
    y[unlabeled] = -1  # a missing category

    structured = labels == "structured"
    obs, var = _programme_tables(
        y, n_classes, genes, programme_of, loadings, n_programmes, n_nuisance, structured
    )
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["programmes"] = z
    adata.uns["exprssl"] = {
        "source": f"latent_programmes(labels={labels}, seed={seed})",
        "format": "synthetic",
        "label_programmes": [f"programme_{k}" for k in range(n_programmes)] if structured else [],
    }
    return adata


def _check_programme_options(
    labels,
    n_samples,
    n_genes,
    n_classes,
    n_programmes,
    n_nuisance,
    genes_per_programme,
    unlabeled_fraction,
) -> None:
    """``latent_programmes``' options, each refused in one line."""
    if labels not in LABEL_MODES:
        raise ConfigError(
            f"latent_programmes: labels must be one of {', '.join(LABEL_MODES)}, got '{labels}'"
        )
    if n_classes < 2 or n_samples < n_classes:
        raise ConfigError(
            f"latent_programmes: need n_classes >= 2 and n_samples >= n_classes, got "
            f"{n_classes} classes for {n_samples} samples"
        )
    if n_programmes < 1 or n_nuisance < 0 or genes_per_programme < 1:
        raise ConfigError(
            f"latent_programmes: need n_programmes >= 1, n_nuisance >= 0 and genes_per_programme "
            f">= 1, got {n_programmes}, {n_nuisance} and {genes_per_programme}"
        )
    if not 0 <= unlabeled_fraction < 1:
        raise ConfigError(
            f"latent_programmes: unlabeled_fraction must be in [0, 1), got {unlabeled_fraction}"
        )
    n_total = n_programmes + n_nuisance
    if n_total * genes_per_programme > n_genes:
        raise ConfigError(
            f"latent_programmes: {n_total} programmes x {genes_per_programme} genes do not fit "
            f"in n_genes={n_genes}"
        )


def _programme_tables(
    y: np.ndarray,
    n_classes: int,
    genes: np.ndarray,
    programme_of: np.ndarray,
    loadings: np.ndarray,
    n_programmes: int,
    n_nuisance: int,
    structured: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` (the label, -1 missing) and ``var`` (each gene's programme, loading, and whether
    it drives the label)."""
    n_genes = loadings.shape[1]
    n_total = n_programmes + n_nuisance
    names = [f"programme_{k}" for k in range(n_programmes)] + [
        f"nuisance_{k}" for k in range(n_nuisance)
    ]
    gene_programme = np.full(n_genes, n_total)
    gene_programme[genes] = programme_of
    obs = pd.DataFrame(
        {"label": pd.Categorical.from_codes(y, [f"class_{k}" for k in range(n_classes)])},
        index=[f"sample_{i}" for i in range(len(y))],
    )
    var = pd.DataFrame(
        {
            "programme": pd.Categorical.from_codes(gene_programme, [*names, "background"]),
            "loading": loadings.sum(0),  # one programme per gene: its loading, or 0
            "drives_label": gene_programme < (n_programmes if structured else 0),
        },
        index=[f"GENE{g:05d}" for g in range(n_genes)],
    )
    return obs, var
