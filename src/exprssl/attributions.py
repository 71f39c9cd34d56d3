"""Which genes carry a prediction: per-class gene attributions, and how stable they are.

Everything is on the model's own standardised inputs (the ``Preprocessor`` output), where 0 is
the mean profile of the training samples:

- networks (an encoder + a probe or fine-tuned head, the MLP baseline): integrated gradients
  (Captum) from the mean profile (all zeros) to each sample, for each class's logit (or
  probability), then the mean absolute (or, with ``signed=True``, mean signed) attribution
  over the samples of that class (or all samples). A gene's attribution is its share of
  "logit(sample) - logit(mean profile)"; completeness makes the shares add up to that difference.
- linear models (logistic regression on the genes; PCA + logistic regression mapped back to
  genes through the loadings): the coefficient of each gene per class, in the same input units.
  For a linear model integrated gradients are exactly ``x_g * w_g``, so the coefficients rank
  genes as its mean absolute attribution would, up to each gene's mean |x_g| (about 0.8 for a
  standardised gene).

The tidy table (``COLUMNS``: gene, class, approach, split, fraction, attribution, rank; rank 1 =
largest |attribution| in its class; fraction = the share of the labels the model was fitted on,
1.0 for ``explain``) is the schema of ``attributions.csv``. ``stability`` says whether an
approach finds the same genes on every split (Spearman correlation of the per-split vectors,
Jaccard overlap of the top-k sets), ``overlap`` whether it agrees with a reference approach
(the linear baseline).

The attribution methods live in ``evaluation.explainers`` (with the ``explain`` capability each
registered learner declares) and are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, LabelColumnError
from .evaluation.explainers import IG_BATCH as IG_BATCH  # the methods, re-exported
from .evaluation.explainers import IG_STEPS as IG_STEPS
from .evaluation.explainers import integrated_gradients as integrated_gradients
from .evaluation.explainers import logistic_weights as logistic_weights
from .evaluation.explainers import pca_gene_weights as pca_gene_weights
from .evaluation.explainers import probe_network as probe_network
from .evaluation.explainers import stacked_member as stacked_member
from .evaluation.explainers import train_network as train_network
from .evaluation.schema import approach_name
from .evaluation.ssl_heads import SSL_HEADS
from .outputs import ATTRIBUTIONS_HEADER

COLUMNS = ATTRIBUTIONS_HEADER.split(",")  # gene, class, approach, split, fraction, attribution, ...
HEADS = tuple(SSL_HEADS)  # the heads ``explain`` fits: the benchmark's (``ssl_heads``)


# ----------------------------------------------------------------------------- the table
def attribution_table(
    values: np.ndarray,
    genes: Sequence[str],
    classes: Sequence[str],
    approach: str,
    split: int = 0,
    fraction: float = 1.0,
) -> pd.DataFrame:
    """Tidy rows (``COLUMNS``) of per-class attributions ``values`` (n_classes, n_genes); rank 1
    is the largest |attribution| of its class (ties: gene order). ``fraction``: the share of the
    labels the model was fitted on (the benchmark's label fraction; 1.0, all labels, for
    ``explain``, whose heads use every labelled sample of their split)."""
    values = np.asarray(values, dtype=np.float64)
    n_classes, n_genes = values.shape
    if n_genes != len(genes) or n_classes != len(classes):
        raise ValueError(
            f"attributions of shape {values.shape} for {len(classes)} classes x {len(genes)} genes"
        )
    order = np.argsort(-np.abs(values), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, n_genes + 1)[None].repeat(n_classes, 0), axis=1)
    return pd.DataFrame(
        {
            "gene": np.tile(np.asarray(genes, dtype=object), n_classes),
            "class": np.repeat(np.asarray(classes, dtype=object), n_genes),
            "approach": approach,
            "split": int(split),
            "fraction": float(fraction),
            "attribution": values.ravel(),
            "rank": rank.ravel(),
        }
    )[COLUMNS]


def top_genes(table: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """The ``k`` best-ranked genes per (approach, split, class), best first."""
    top = table[table["rank"] <= k]
    return top.sort_values(["approach", "split", "class", "rank"]).reset_index(drop=True)


def _importance(part: pd.DataFrame) -> pd.DataFrame:
    """|attribution| of one approach and class's rows: genes x splits."""
    # a gene missing from a split's rows (its preprocessing did not keep it) had no attribution
    return part.pivot(index="gene", columns="split", values="attribution").abs().fillna(0.0)


def stability(table: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """Per (approach, class): do the splits find the same genes? ``spearman``: mean over split
    pairs of the rank correlation of |attribution| over all genes; ``jaccard``: mean over split
    pairs of |A and B| / |A or B| of the top-k sets. NaN with fewer than two splits.

    Parameters
    ----------
    table
        Attributions, as ``explain`` returns them.
    k
        Size of the top-gene sets.

    Returns
    -------
    pandas.DataFrame
        Columns approach, class, n_splits, spearman, ``jaccard_top{k}``.
    """
    from scipy.stats import spearmanr

    rows = []
    for (approach, cls), part in table.groupby(["approach", "class"], sort=True):
        imp = _importance(part)
        n = imp.shape[1]
        rho = jac = np.nan
        if n >= 2:
            r = spearmanr(imp.to_numpy()).statistic
            r = np.array([[1.0, r], [r, 1.0]]) if np.ndim(r) == 0 else r
            rho = float(r[np.triu_indices(n, 1)].mean())
            top = (imp.rank(ascending=False, method="first") <= k).to_numpy(dtype=np.float64)
            inter = top.T @ top
            size = top.sum(0)
            jac = float(
                np.mean(
                    [
                        inter[i, j] / (size[i] + size[j] - inter[i, j])
                        for i, j in combinations(range(n), 2)
                    ]
                )
            )
        rows.append(
            {
                "approach": approach,
                "class": cls,
                "n_splits": n,
                "spearman": rho,
                f"jaccard_top{k}": jac,
            }
        )
    return pd.DataFrame(rows)


def overlap(table: pd.DataFrame, reference: str, k: int = 20) -> pd.DataFrame:
    """Per (approach, class): the fraction of the approach's top-k genes that are also in
    ``reference``'s top-k (the linear baseline's), on the same split, averaged over splits.

    Parameters
    ----------
    table
        Attributions, as ``explain`` returns them.
    reference
        The approach to compare with (e.g. ``"logreg"``).
    k
        Size of the top-gene sets.

    Returns
    -------
    pandas.DataFrame
        Columns approach, class, ``overlap_top{k}_{reference}``.
    """
    top = table[table["rank"] <= k]
    ref = top[top["approach"] == reference][["gene", "class", "split"]].assign(shared=True)
    other = top[top["approach"] != reference].merge(ref, on=["gene", "class", "split"], how="left")
    other["shared"] = other["shared"].astype("boolean").fillna(False).astype(bool)
    per_split = other.groupby(["approach", "class", "split"])["shared"].mean()
    return (
        per_split.groupby(["approach", "class"])
        .mean()
        .rename(f"overlap_top{k}_{reference}")
        .reset_index()
    )


def precision_at_k(table: pd.DataFrame, relevant: Sequence[str], k: int = 20) -> pd.DataFrame:
    """How many of an approach's top genes are genes known to drive the label (a control).

    Parameters
    ----------
    table
        An attributions table (``COLUMNS``), from ``explain`` or a benchmark.
    relevant
        The genes known to drive the label (e.g. ``latent_programmes``' ``var["drives_label"]``).
    k
        How many top-ranked genes of each class count.

    Returns
    -------
    pandas.DataFrame
        Per approach, split and class: ``precision``, the share of the top ``k`` genes in
        ``relevant`` (chance: ``len(relevant)`` / number of genes).
    """
    top = table[table["rank"] <= k]
    hit = top["gene"].isin(set(map(str, relevant)))
    return (
        hit.groupby([top["approach"], top["split"], top["class"]])
        .mean()
        .rename("precision")
        .reset_index()
    )


# ----------------------------------------------------------------------------- SSLModel level
def _labels(adata, labels) -> pd.Series:
    """The label of each sample as strings (NaN: unlabelled), from an obs column name or values."""
    if isinstance(labels, str):
        from .io import require_label

        y = require_label(adata, labels)
    else:
        y = pd.Series(np.asarray(labels, dtype=object), index=adata.obs_names)
        if len(y) != adata.n_obs:
            raise LabelColumnError(f"labels has {len(y)} entries for {adata.n_obs} samples")
    y = pd.Series(y, index=adata.obs_names).astype(object).where(pd.notna(y), None)
    return y.map(lambda v: None if v is None else str(v))


def explain(
    model,
    adata,
    labels,
    *,
    head: str = "linear_probe",
    splits: int = 1,
    baseline: bool = True,
    samples: str = "class",
    signed: bool = False,
    target: str = "logit",
    C: float = 1.0,
    recipe=None,
    seed: int = 0,
    n_steps: int = IG_STEPS,
    batch_size: int = IG_BATCH,
) -> pd.DataFrame:
    """Per-class gene attributions (``COLUMNS``) of a fitted ``SSLModel`` (or its directory) with
    a head fit on ``labels`` (an ``adata.obs`` column name, or one value per sample; missing =
    unlabelled). ``adata``: an AnnData, a file path or a bundled dataset's name.

    ``head``: ``"linear_probe"`` (the default protocol's logistic probe on the embedding, C = ``C``)
    or ``"finetune"`` (encoder + softmax head trained by the fine-tuning recipe). Attributions run
    through encoder + head by integrated gradients on the model's standardised inputs (see
    ``integrated_gradients``) over every labelled sample. ``splits`` > 1 fits one head per training
    part of a stratified K-fold, for ``stability``; ``baseline`` adds logistic regression on the
    same standardised genes (approach ``logreg``) for ``overlap``.

    Parameters
    ----------
    model
        A fitted ``SSLModel``, or a model directory.
    adata
        The samples.
    labels
        An ``obs`` column name, or one label per sample (missing = unlabelled).
    head
        ``"linear_probe"`` or ``"finetune"``.
    splits
        Heads to fit (stratified K-fold training parts); 1 fits one on all labelled samples.
    baseline
        Also attribute logistic regression on the standardised genes.
    samples, signed, target, n_steps, batch_size
        As in ``integrated_gradients``.
    C
        The linear probe's inverse regularisation strength.
    recipe
        The fine-tuning recipe for ``head="finetune"``; None for the default.
    seed
        Seed of the splits and the heads.

    Returns
    -------
    pandas.DataFrame
        One row per gene, class, approach and split (``COLUMNS``).

    Raises
    ------
    exprssl.errors.ConfigError
        An unknown ``head`` or a non-positive ``splits``.
    exprssl.errors.LabelColumnError
        A missing label column or fewer than two classes.
    """
    from sklearn.model_selection import StratifiedKFold

    model, adata, X, y, classes = _explained_data(model, adata, labels, head, splits)
    genes = list(model.genes_)
    parts = (
        [np.arange(len(y))]
        if splits == 1
        else [
            fit for fit, _ in StratifiedKFold(splits, shuffle=True, random_state=seed).split(X, y)
        ]
    )
    name = approach_name(model.method, "ssl", head)
    tables = []
    ig: dict[str, Any] = {
        "samples": samples,
        "signed": signed,
        "target": target,
        "n_steps": n_steps,
        "batch_size": batch_size,
    }
    for split, fit in enumerate(parts):
        net = _head_network(model, head, X[fit], y[fit], len(classes), C, recipe, seed, split)
        values = integrated_gradients(net, X, len(classes), y, **ig)
        tables.append(attribution_table(values, genes, classes, name, split))
        if baseline:
            W, _ = logistic_weights(_logistic(X[fit], y[fit], C, seed), len(classes))
            tables.append(attribution_table(W, genes, classes, "logreg", split))
    return pd.concat(tables, ignore_index=True)


def _explained_data(model, adata, labels, head: str, splits: int):
    """``explain``'s inputs checked and loaded: (model, adata, standardised labelled rows, class
    codes, class names)."""
    if head not in HEADS:
        raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if not isinstance(splits, int) or splits < 1:
        raise ConfigError(f"splits must be a positive integer, got {splits!r}")
    if isinstance(model, (str, os.PathLike)):
        from .model import SSLModel

        model = SSLModel.load(model)
    if isinstance(adata, (str, os.PathLike)):
        from .io import load_dataset

        adata = load_dataset(adata)
    model._check_fitted()
    y_text = _labels(adata, labels)
    keep = y_text.notna().to_numpy()
    classes = np.array(sorted(set(y_text[keep])), dtype=object)
    if len(classes) < 2:
        raise LabelColumnError(
            f"labels: {len(classes)} class among the samples; need at least 2 to explain"
        )
    y = pd.Categorical(y_text[keep], categories=classes).codes.astype(np.int64)
    if splits > 1 and np.bincount(y).min() < splits:
        small = classes[np.bincount(y).argmin()]
        raise LabelColumnError(
            f"labels: class '{small}' has {np.bincount(y).min()} samples, fewer than the "
            f"{splits} splits; use fewer splits"
        )
    X = model.preprocessor_.transform(adata[keep] if not keep.all() else adata)
    return model, adata, X, y, classes


def _head_network(model, head: str, X, y, n_classes: int, C, recipe, seed: int, split: int):
    """The network of ``head`` fit on (``X``, ``y``) of one split, as integrated gradients run
    through it: encoder + logistic probe (C = ``C``), or encoder + head fine-tuned."""
    if head == "linear_probe":
        Z = model.embed_preprocessed(X)
        W, b = logistic_weights(_logistic(Z, y, C, seed), n_classes)
        return probe_network(model.method_.encoder, W, b)
    return train_network(model.method_.encoder, X, y, n_classes, recipe=recipe, seed=seed + split)


def _logistic(F, y, C: float, seed: int):
    from .evaluation.learners import fit_logistic

    return fit_logistic(F, y, {"C": C}, seed)


def write_attributions(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Sequence[Any] = (),
) -> None:
    """``attributions.csv`` by the output rules: checked first (a file exprssl did not write is
    never replaced; an attributions table only with ``overwrite``), written atomically."""
    from .outputs import check_output
    from .utils import atomic_path

    check_output(path, "attributions", overwrite=overwrite, inputs=inputs)
    with atomic_path(path) as tmp:
        table[COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
