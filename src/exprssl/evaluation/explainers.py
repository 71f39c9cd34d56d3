"""How a learner's prediction is attributed to genes: the ``explain`` capability every registered
learner (an SSL head in ``ssl_heads``, a baseline in ``baselines/``) declares, the task it is
handed (``AttributionTask``), and the attribution methods it uses.

- networks (an encoder + a probe or fine-tuned head, the MLP baseline): integrated gradients
  (``integrated_gradients``, Captum) from the mean profile to each sample;
- linear models: their coefficients per gene (``logistic_weights``), PCA + logistic regression
  through the loadings (``pca_gene_weights``);
- anything else says it is not attributable, and why (the report prints the reason).

The public names are re-exported by ``exprssl.attributions``, which documents the methods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .heads import HeadRecipe, StackedMLP, train_stacked
from .keys import GENES, FeatureKey, Features

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
    samples, target
        See above; an unknown value, or ``samples="class"`` without ``y``: ConfigError.
    signed
        Average signed attributions; False averages their absolute values.
    n_steps, batch_size
        Integration points along the path; rows per Captum call.

    Returns
    -------
    numpy.ndarray
        float (n_classes, n_genes).
    """
    from captum.attr import IntegratedGradients

    _check_ig_options(samples, target, y)
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
            totals[c] = _ig_sum(ig, X, rows, c, signed, n_steps, batch_size)
    return (totals / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _check_ig_options(samples: str, target: str, y) -> None:
    if samples not in ("class", "all"):
        raise ConfigError(f"samples must be 'class' or 'all', got {samples!r}")
    if target not in ("logit", "probability"):
        raise ConfigError(f"target must be 'logit' or 'probability', got {target!r}")
    if samples == "class" and y is None:
        raise ConfigError("samples='class' needs the class of each row (y)")


def _ig_sum(ig, X, rows, c: int, signed: bool, n_steps: int, batch_size: int) -> np.ndarray:
    """Class ``c``'s attributions summed over ``rows``, ``batch_size`` rows per Captum call."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, len(rows), batch_size):
        x = torch.from_numpy(X[rows[start : start + batch_size]])
        a = ig.attribute(x, baselines=torch.zeros_like(x), target=c, n_steps=n_steps).detach()
        total += (a if signed else a.abs()).sum(0).double().numpy()
    return total


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


# ----------------------------------------------------------------------------- the capability
INTEGRATED_GRADIENTS = "integrated gradients"
COEFFICIENTS = "coefficients"
PCA_LOADINGS = "coefficients through the PCA loadings"
ATTRIBUTIONS = (INTEGRATED_GRADIENTS, COEFFICIENTS, PCA_LOADINGS)
LINEAR = (COEFFICIENTS, PCA_LOADINGS)  # the reference other approaches' top genes are compared to


@dataclass
class AttributionTask:
    """Plain data for one split: runs the same in a worker process or inline."""

    split: int
    fraction: float
    approaches: list[tuple[str, str, str, dict[str, Any]]]  # (name, method, head, chosen params)
    lab: np.ndarray
    val: np.ndarray
    rows: np.ndarray  # the test rows explained
    y: np.ndarray
    n_classes: int
    features: Features  # the split's derived features (GENES, POOL, PCA, embeddings)
    models: dict[str, str] = field(default_factory=dict)  # SSL method or given model -> directory
    encoder: dict[str, Any] = field(default_factory=dict)
    recipe: HeadRecipe = field(default_factory=HeadRecipe)
    seed: int = 0  # the label subset's seed: the re-fits (and head initialisations) use it

    @property
    def y_lab(self) -> np.ndarray:
        return self.y[self.lab]

    @property
    def y_rows(self) -> np.ndarray:
        return self.y[self.rows]

    def is_given(self, method: str) -> bool:
        """Whether ``method`` is a given pretrained model (it has its own inputs, ``X:<name>``)."""
        return FeatureKey.genes(method) in self.features

    def genes_key(self, method: str) -> FeatureKey:
        """The genes ``method`` reads: a given model's own preprocessing, else the split's."""
        return FeatureKey.genes(method) if self.is_given(method) else GENES

    def labelled(self, key: FeatureKey) -> np.ndarray:
        """The labelled rows of one feature file."""
        return np.asarray(np.load(self.features[key], mmap_mode="r")[self.lab])

    def explained(self, key: FeatureKey) -> np.ndarray:
        """The explained test rows of one feature file."""
        return np.asarray(np.load(self.features[key], mmap_mode="r")[self.rows])


class Explainer:
    """The ``explain`` capability of a registered learner: ``attribution`` says how its approach
    is attributed to genes (one of ``ATTRIBUTIONS``) and ``explain`` computes it; a learner that
    cannot be attributed leaves ``attribution`` None and says why in ``why_not``."""

    attribution: ClassVar[str | None] = None
    why_not: ClassVar[str] = "it declares no way to attribute its predictions to genes"

    @property
    def attributable(self) -> bool:
        return self.attribution is not None

    @property
    def linear(self) -> bool:
        """Attributed by its own coefficients (the reference for the others' top genes)."""
        return self.attribution in LINEAR

    def describe(self) -> str:
        """How its approach is attributed, or ``"not attributable: <why>"``."""
        return self.attribution or f"not attributable: {self.why_not}"

    def explain(self, task: AttributionTask, method: str, params: dict[str, Any]) -> np.ndarray:
        """(n_classes, n_genes) attributions on the standardised genes of ``task``'s test rows,
        re-fitted on its labelled rows with the cell's chosen ``params``."""
        raise NotImplementedError(f"not attributable: {self.why_not}")

    @classmethod
    def check_capability(cls, name: str) -> None:
        """A registration error when the declared capability is incomplete."""
        if cls.attribution is not None and cls.attribution not in ATTRIBUTIONS:
            raise TypeError(f"{name}: attribution must be one of {ATTRIBUTIONS} or None")
        if cls.attribution is not None and cls.explain is Explainer.explain:
            raise TypeError(f"{name}: declares attribution {cls.attribution!r} without explain")
        if cls.attribution is None and not cls.why_not:
            raise TypeError(f"{name}: not attributable, but says no why_not")


def trained_network_attributions(task: AttributionTask, method: str, net) -> np.ndarray:
    """Integrated gradients through a trained one-model ``StackedMLP`` (``learners.train_torch``)
    on ``method``'s genes of the task's explained rows."""
    X_rows = task.explained(task.genes_key(method))
    return integrated_gradients(stacked_member(net), X_rows, task.n_classes, task.y_rows)


def coefficients(model, n_classes: int) -> np.ndarray:
    """A fitted logistic regression's per-class gene coefficients (``logistic_weights``)."""
    return logistic_weights(model, n_classes)[0]
