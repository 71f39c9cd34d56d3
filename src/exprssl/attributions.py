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
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, LabelColumnError
from .outputs import ATTRIBUTIONS_HEADER

COLUMNS = ATTRIBUTIONS_HEADER.split(",")  # gene, class, approach, split, fraction, attribution, ...
HEADS = ("linear_probe", "finetune")
IG_STEPS = 32  # Gauss-Legendre points along the path: attributions add up to the logit difference
# within 2-3% on the default encoder (16 points: 4-7%; ranks need fewer than sums)
IG_BATCH = (
    32  # samples per Captum call: at most IG_BATCH * IG_STEPS interpolated profiles in memory
)


# ----------------------------------------------------------------------------- networks
class _StackedMember(nn.Module):
    """Model ``m`` of a ``StackedMLP`` as a plain (n, genes) -> (n, classes) network."""

    def __init__(self, net: nn.Module, m: int = 0):
        super().__init__()
        self.net, self.m = net, int(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[self.m]


def stacked_member(net: nn.Module, m: int = 0) -> nn.Module:
    """Model ``m`` of an ``evaluation.heads.StackedMLP`` (a fine-tuned encoder + head, or the MLP
    baseline), as a network integrated gradients can run through."""
    return _StackedMember(net, m).eval()


def probe_network(encoder: nn.Module, weight: np.ndarray, bias: np.ndarray) -> nn.Module:
    """A frozen encoder followed by a linear probe ``z @ weight.T + bias`` (``weight``: classes x
    embedding dims, in the encoder's output units, as ``logistic_weights`` returns)."""
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return nn.Sequential(copy.deepcopy(encoder), head).eval()


def integrated_gradients(
    network: nn.Module | Callable,
    X: np.ndarray,
    n_classes: int,
    y: np.ndarray | None = None,
    *,
    samples: str = "class",
    signed: bool = False,
    target: str = "logit",
    n_steps: int = IG_STEPS,
    batch_size: int = IG_BATCH,
) -> np.ndarray:
    """Per-class gene attributions (n_classes, n_genes) of ``network`` on standardised rows ``X``.

    Baseline: the mean profile (zeros). ``target``: each class's ``"logit"`` or ``"probability"``.
    ``samples="class"`` averages over the rows labelled that class (``y``: class codes; a class
    without rows gets zeros), ``"all"`` over every row. Memory is bounded by ``batch_size`` rows
    at a time: Captum holds ``batch_size * n_steps`` interpolated profiles (and their gradients)
    at once, e.g. 32 * 32 * 20,000 genes * 4 bytes = 82 MB each; only the per-class sums are kept.

    Parameters
    ----------
    network
        Maps standardised rows to class logits.
    X
        Standardised rows (n_samples, n_genes).
    n_classes
        Number of classes (the network's outputs).
    y
        Class codes of the rows, for ``samples="class"``.
    samples
        ``"class"`` or ``"all"``.
    signed
        Average signed attributions; False averages their absolute values.
    target
        ``"logit"`` or ``"probability"``.
    n_steps
        Integration points along the path.
    batch_size
        Rows per Captum call.

    Returns
    -------
    numpy.ndarray
        float (n_classes, n_genes).

    Raises
    ------
    exprssl.errors.ConfigError
        An unknown ``samples`` or ``target``, or ``samples="class"`` without ``y``.
    """
    from captum.attr import IntegratedGradients

    if samples not in ("class", "all"):
        raise ConfigError(f"samples must be 'class' or 'all', got {samples!r}")
    if target not in ("logit", "probability"):
        raise ConfigError(f"target must be 'logit' or 'probability', got {target!r}")
    if samples == "class" and y is None:
        raise ConfigError("samples='class' needs the class of each row (y)")
    if isinstance(network, nn.Module):
        network.eval()  # BatchNorm's running statistics and no dropout: the model as it predicts
    forward = network if target == "logit" else (lambda x: torch.softmax(network(x), -1))
    ig = IntegratedGradients(forward)
    X = np.asarray(X, dtype=np.float32)
    y = None if y is None else np.asarray(y)
    totals = np.zeros((n_classes, X.shape[1]), dtype=np.float64)
    counts = np.zeros(n_classes, dtype=np.float64)
    with torch.enable_grad():
        for c in range(n_classes):
            rows = np.flatnonzero(y == c) if samples == "class" else np.arange(len(X))
            counts[c] = len(rows)
            for start in range(0, len(rows), batch_size):
                x = torch.from_numpy(X[rows[start : start + batch_size]])
                a = ig.attribute(
                    x, baselines=torch.zeros_like(x), target=c, n_steps=n_steps
                ).detach()
                totals[c] += (a if signed else a.abs()).sum(0).double().numpy()
    return (totals / np.maximum(counts, 1)[:, None]).astype(np.float32)


def train_network(
    encoder: nn.Module | None,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    freeze_encoder: bool = False,
    recipe=None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> nn.Module:
    """An encoder (pretrained or random-init) + softmax head trained by the benchmark's fine-tuning
    recipe (``evaluation.heads``), early-stopping on a stratified ``val_fraction`` of the rows
    when every class has two; returned as a plain network for ``integrated_gradients``."""
    from .evaluation.heads import HeadRecipe, StackedMLP, train_stacked

    recipe = recipe if recipe is not None else HeadRecipe()
    y = np.array(y, dtype=np.int64)  # a writable copy: torch shares its memory
    torch.manual_seed(seed)
    net = StackedMLP(
        copy.deepcopy(encoder) if encoder is not None else None,
        X.shape[1],
        n_classes,
        1,
        freeze_encoder=freeze_encoder,
        seed=seed,
    )
    val = np.zeros(len(y), dtype=bool)
    if val_fraction > 0 and np.bincount(y, minlength=n_classes)[np.unique(y)].min() >= 2:
        rng = np.random.default_rng(seed)
        for c in np.unique(y):  # at least one row of each class stays in training
            rows = rng.permutation(np.flatnonzero(y == c))
            val[rows[: min(len(rows) - 1, max(1, round(val_fraction * len(rows))))]] = True
    Xt = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32)
    train_stacked(
        net,
        Xt,
        torch.as_tensor(y, dtype=torch.long),
        torch.from_numpy(~val)[None],
        torch.from_numpy(val)[None] if val.any() else None,
        recipe,
        seed=seed,
    )
    return stacked_member(net)


# ----------------------------------------------------------------------------- linear models
def logistic_weights(model, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n_classes, d), bias (n_classes,)) of a fitted scikit-learn logistic regression (or a
    pipeline ending in one, after an optional StandardScaler), in the units of its input, as
    softmax logits. Two classes: ``+-w/2``, which give sklearn's probabilities; classes the fit
    did not see get zeros."""
    steps = getattr(model, "steps", None)
    clf = steps[-1][1] if steps else model
    coef, intercept = (
        np.asarray(clf.coef_, dtype=np.float64),
        np.asarray(clf.intercept_, dtype=np.float64),
    )
    if steps and len(steps) > 1:  # StandardScaler: logit = ((x - mean) / scale) @ coef.T + b
        scaler = steps[0][1]
        coef = coef / scaler.scale_
        intercept = intercept - coef @ scaler.mean_
    if coef.shape[0] == 1:
        coef, intercept = (
            np.vstack([-coef / 2, coef / 2]),
            np.array([-intercept[0] / 2, intercept[0] / 2]),
        )
    W, b = np.zeros((n_classes, coef.shape[1])), np.zeros(n_classes)
    seen = np.asarray(clf.classes_, dtype=int)
    W[seen], b[seen] = coef, intercept
    return W.astype(np.float32), b.astype(np.float32)


def pca_gene_weights(score_weights: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Coefficients of a model on PCA scores ((n_classes, k), in score units) mapped back to the
    genes through the loadings (``components``: (>= k, n_genes), as ``PCA.components_``): a
    score is ``(x - mean) @ components.T``, so d logit / d x_g = sum_j w_j * components[j, g]."""
    k = score_weights.shape[1]
    return (score_weights @ np.asarray(components)[:k]).astype(np.float32)


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

    from .evaluation.learners import fit_logistic

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
    genes = list(model.genes_)
    encoder = model.method_.encoder
    parts = (
        [np.arange(len(y))]
        if splits == 1
        else [
            fit for fit, _ in StratifiedKFold(splits, shuffle=True, random_state=seed).split(X, y)
        ]
    )
    name = f"{model.method}+{head}"
    tables = []
    ig: dict[str, Any] = {
        "samples": samples,
        "signed": signed,
        "target": target,
        "n_steps": n_steps,
        "batch_size": batch_size,
    }
    for split, fit in enumerate(parts):
        if head == "linear_probe":
            Z = model.embed_preprocessed(X[fit])
            W, b = logistic_weights(fit_logistic(Z, y[fit], {"C": C}, seed), len(classes))
            net = probe_network(encoder, W, b)
        else:
            net = train_network(
                encoder, X[fit], y[fit], len(classes), recipe=recipe, seed=seed + split
            )
        values = integrated_gradients(net, X, len(classes), y, **ig)
        tables.append(attribution_table(values, genes, classes, name, split))
        if baseline:
            W, _ = logistic_weights(fit_logistic(X[fit], y[fit], {"C": C}, seed), len(classes))
            tables.append(attribution_table(W, genes, classes, "logreg", split))
    return pd.concat(tables, ignore_index=True)


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
