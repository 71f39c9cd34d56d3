"""Test-set metrics and the summary statistics of the label-efficiency benchmark."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present in ``y_true``. Predicting a class the held-out part
    lacks is routine (an inner-CV fold, a small test split); scikit-learn warns every time it
    leaves such a class out, which buried a benchmark's output under hundreds of lines."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred))


def classification_metrics(
    y_true: Sequence, proba: np.ndarray, classes: Sequence
) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and macro one-vs-rest AUROC from class probabilities.

    ``classes`` orders the columns of ``proba``. AUROC is computed over the classes present in
    ``y_true`` (renormalising their probabilities), NaN when fewer than two are present.
    """
    y_true = np.asarray(y_true).astype(str)
    classes = np.asarray(classes).astype(str)
    proba = np.asarray(proba, dtype=np.float64)
    y_pred = classes[proba.argmax(1)]
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "macro_f1": f1_score(
            y_true, y_pred, average="macro", labels=np.unique(y_true), zero_division=0
        ),
    }
    # in the labels' string order: roc_auc_score requires ordered labels, and class codes 10+
    # as strings sort before "2" (19 classes failed every cell)
    present = sorted(c for c in classes if c in set(y_true))
    if len(present) < 2:
        out["auroc"] = math.nan
    else:
        cols = [int(np.flatnonzero(classes == c)[0]) for c in present]
        p = proba[:, cols]
        p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
        if len(present) == 2:
            out["auroc"] = roc_auc_score((y_true == present[1]).astype(int), p[:, 1])
        else:
            out["auroc"] = roc_auc_score(
                y_true, p, multi_class="ovr", average="macro", labels=present
            )
    return {k: float(v) for k, v in out.items()}


def score(y_true, y_pred, metric: str) -> float:
    """One label-based metric (AUROC needs probabilities: balanced accuracy stands in for it)."""
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if metric == "macro_f1":
        return float(
            f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true), zero_division=0)
        )
    return balanced_accuracy(y_true, y_pred)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval over seeds; with one value, or identical values (every seed labelled
    the same samples at 100%), the interval collapses to the mean instead of rounding noise."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size == 1 or np.ptp(v) == 0:
        return m, m, m
    half = float(stats.t.ppf((1 + level) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half
