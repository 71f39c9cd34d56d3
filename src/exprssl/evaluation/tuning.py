"""Hyperparameters chosen by inner cross-validation on the labelled subset only, equal for both
sides.

Every baseline and every SSL head gets a small deterministic grid and the same inner folds, so
"who wins" does not measure defaults: logistic regression's C for the raw-gene baseline and for
the probes on embeddings alike, PCA's k, XGBoost's depth, minimum child weight and learning
rate (with early stopping), and one learning-rate scale for the MLP baseline and for
fine-tuning alike. The test set is never seen. When the smallest class has fewer than two
labelled samples there is nothing to cross-validate: the defaults are used, and the report says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# each grid lists its default first; ties in the inner-CV score keep the earlier entry
GRIDS: dict[str, list[dict[str, Any]]] = {
    "logistic": [{"C": 1.0}, {"C": 0.01}, {"C": 0.1}, {"C": 10.0}],
    "pca": [{"k": 50}, {"k": 10}, {"k": 25}],
    "xgboost": [
        {"max_depth": 4, "min_child_weight": 1.0, "learning_rate": 0.1},
        {"max_depth": 2, "min_child_weight": 0.1, "learning_rate": 0.3},
        {"max_depth": 4, "min_child_weight": 0.1, "learning_rate": 0.1},
        {"max_depth": 2, "min_child_weight": 1.0, "learning_rate": 0.3},
    ],
    "torch": [{"lr_scale": 1.0}, {"lr_scale": 3.0}],
}
# inner folds per learner: the costly learners (the torch heads, which train every fold's model
# and the final one, and XGBoost) get two, the linear ones three; both sides of a comparison
# alike (fine-tuning and the MLP baseline; probes and logistic regression on genes)
MAX_FOLDS = {"logistic": 3, "pca": 3, "xgboost": 2, "torch": 2}


def regularisation_paths(grid: list[dict[str, Any]]) -> list[list[int]]:
    """Grid positions in warm-start order: one path per setting other than ``C`` (the elastic
    net's L1 share), each from the smallest C (the strongest regularisation, whose solution is
    nearest zero and the cheapest) up."""
    paths: dict[tuple, list[int]] = {}
    for i, params in enumerate(grid):
        key = tuple(sorted((k, v) for k, v in params.items() if k != "C"))
        paths.setdefault(key, []).append(i)
    return [sorted(path, key=lambda i: grid[i].get("C", 1.0)) for path in paths.values()]


def describe_grids(grids: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """One line per grid (``baselines.all_grids()``: ``GRIDS`` and the baselines' own), for the
    report and the manifest."""
    return {name: describe_grid(grid) for name, grid in grids.items()}


def describe_grid(grid: list[dict[str, Any]]) -> str:
    """``'C=1; C=0.01'``: one grid on one line."""
    return "; ".join(
        ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())
        for p in grid
    )


def inner_folds(y: np.ndarray, seed: int, max_folds: int = 3) -> list[np.ndarray] | None:
    """Stratified held-out folds (positions into ``y``), as many as the smallest class allows up
    to ``max_folds``. A class with a single labelled sample is never held out (it always
    trains); None when fewer than two classes can be held out."""
    from sklearn.model_selection import StratifiedKFold

    classes, counts = np.unique(y, return_counts=True)
    held = classes[counts >= 2]
    if len(held) < 2:
        return None
    k = int(min(max_folds, counts[counts >= 2].min()))
    rows = np.flatnonzero(np.isin(y, held))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [rows[test] for _, test in cv.split(np.zeros(len(rows)), y[rows])]


def pick(scores: list[float], tiebreak: list[float] | None = None) -> int:
    """Index of the best mean CV score; ties go to the lower tie-break (e.g. validation loss),
    then to the earlier grid entry (the default)."""
    s = np.round(np.asarray(scores, dtype=float), 10)
    tb = np.zeros(len(s)) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    order = np.lexsort((np.arange(len(s)), tb, -s))
    return int(order[0])


def cv_note(y: np.ndarray, folds: list[np.ndarray] | None, classes=None) -> str:
    """Why a cell kept its defaults, or which classes its inner CV could not hold out."""
    codes, counts = np.unique(y, return_counts=True)
    name = (lambda c: str(classes[c])) if classes is not None else str
    single = [name(c) for c, n in zip(codes, counts, strict=True) if n < 2]
    if folds is None:
        return (
            "kept the defaults (fewer than two classes have two labelled samples: nothing to "
            "cross-validate)"
        )
    if single:
        return (
            f"classes with one labelled sample ({', '.join(single)}) always train, never held out"
        )
    return ""
