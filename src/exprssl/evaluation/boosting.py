"""XGBoost's inner-CV search, paying only for the grid points worth finishing.

At 20,000 genes a boosting round is the cost (19 trees per round for 19 classes), and the old
search paid every grid point's full run on every fold, each ``XGBClassifier`` fit re-sketching
the genes' quantiles of its rows. Here each inner fold is quantised once (a ``QuantileDMatrix``
of its training rows, its held-out rows binned against it: the bins each fit had before) and
shared by every grid point; each (grid point, fold) is one native booster that adds rounds on
demand and early-stops exactly as ``XGBClassifier(early_stopping_rounds=PATIENCE)`` did; and
the grid is searched by successive halving over rounds: at rounds ``FIRST_RUNG``, twice that,
..., the worse half of each group of *comparable* grid points (same learning rate and depth),
by mean held-out loss across folds so far, stops. Grid points with a different learning rate
are never compared at equal rounds (a smaller rate needs proportionally more rounds, so it would
always look worse early), and a grid point whose folds have all early-stopped is never pruned
(its rounds are spent). The survivors are chosen among by the usual rule (best mean inner-CV
score at each fold's best round, ties by held-out loss).

A round's cost grows with the genes it bins (histograms over every gene, column sampling does
not skip them: 22 s a round at 2,000 rows x 20,000 genes, 19 classes, one thread), so a fit on
many rows reads its own training rows' top genes (``screening.screened``). At few rows a round's
cost is set by the genes (split finding over their bins), so mid-sized fits stay costly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import score
from .screening import screened
from .tuning import pick

PATIENCE = 20  # rounds without a lower held-out loss before a fold stops
MAX_ROUNDS = 300
FIRST_RUNG = 50  # rounds every grid point trains before the first halving
FIXED = {"subsample": 0.8, "colsample_bytree": 0.5, "tree_method": "hist", "max_bin": 64}


def booster_params(params: dict[str, Any], n_classes: int, seed: int, device: str) -> dict:
    """The native booster's parameters of the grid point ``params``: what ``XGBClassifier``
    passed (two classes train binary:logistic, whose loss is logloss; mlogloss fails there).
    ``device`` is a torch device name: a GPU one (``cuda:1``) trains there, others on the CPU."""
    task = (
        {"objective": "binary:logistic", "eval_metric": "logloss"}
        if n_classes == 2
        else {"objective": "multi:softprob", "num_class": n_classes, "eval_metric": "mlogloss"}
    )
    where = device if str(device).startswith("cuda") else "cpu"
    return {**task, **FIXED, "nthread": 1, "seed": seed, "verbosity": 0, "device": where, **params}


def quantised(X: np.ndarray, y: np.ndarray, ref=None):
    """The rows' bin indices under the cuts of ``ref`` (or their own quantile sketch)."""
    import xgboost as xgb

    return xgb.QuantileDMatrix(X, label=y, max_bin=FIXED["max_bin"], nthread=1, ref=ref)


def class_proba(booster, X: np.ndarray, rounds: int) -> np.ndarray:
    """Probabilities (n, classes) of the first ``rounds`` rounds, on the raw values (as
    ``XGBClassifier.predict_proba``: one column per class also for two)."""
    p = booster.inplace_predict(np.ascontiguousarray(X), iteration_range=(0, rounds))
    return np.column_stack([1 - p, p]) if p.ndim == 1 else p


@dataclass
class Fold:
    """One inner fold, quantised once for every grid point."""

    train: Any  # QuantileDMatrix of the training rows
    held: Any  # QuantileDMatrix of the held-out rows, binned by the training rows' cuts
    X_held: np.ndarray
    y_held: np.ndarray


class FoldRun:
    """One grid point on one fold: a booster whose rounds are added on demand."""

    def __init__(self, params: dict, fold: Fold):
        import xgboost as xgb

        self.fold = fold
        self.booster = xgb.Booster(params, [fold.train, fold.held])
        self.losses: list[float] = []
        self.best = 0  # round (0-based) of the lowest held-out loss so far
        self.done = False

    def advance(self, until: int) -> None:
        """Train up to ``until`` rounds in all, or until early stopping."""
        while not self.done and len(self.losses) < until:
            i = len(self.losses)
            self.booster.update(self.fold.train, i)
            text = self.booster.eval_set([(self.fold.held, "held")], i)
            self.losses.append(float(text.rsplit(":", 1)[1]))
            if self.losses[i] < self.losses[self.best]:
                self.best = i
            self.done = i - self.best >= PATIENCE or i + 1 >= MAX_ROUNDS

    def result(self, metric: str) -> tuple[float, float, int]:
        """(score, held-out loss, rounds) at the best round."""
        pred = class_proba(self.booster, self.fold.X_held, self.best + 1).argmax(1)
        return score(self.fold.y_held, pred, metric), self.losses[self.best], self.best + 1


def search(F_lab, y, folds, grid, n_classes: int, seed: int, metric: str, device: str):
    """Inner-CV search over ``grid`` (class indices ``y``); returns (the chosen grid position,
    its median best number of rounds, the grid positions pruned by halving)."""
    quantised_folds = []
    for hold in folds:
        fit = np.setdiff1d(np.arange(len(y)), hold)
        genes = screened(F_lab, y[fit], rows=fit)
        train = quantised(F_lab[np.ix_(fit, genes)], y[fit])
        X_held = F_lab[np.ix_(hold, genes)]
        quantised_folds.append(Fold(train, quantised(X_held, y[hold], train), X_held, y[hold]))
    runs = [
        [FoldRun(booster_params(p, n_classes, seed, device), f) for f in quantised_folds]
        for p in grid
    ]
    alive = halve(grid, runs)
    results = [
        [r.result(metric) for r in runs[g]] if g in alive else None for g in range(len(grid))
    ]
    cv = [float(np.mean([r[0] for r in res])) if res else -np.inf for res in results]
    losses = [float(np.mean([r[1] for r in res])) if res else np.inf for res in results]
    best = pick(cv, losses)
    rounds = int(np.median([r[2] for r in results[best]]))
    return best, rounds, sorted(set(range(len(grid))) - alive)


def halve(grid: list[dict], runs: list[list[FoldRun]]) -> set[int]:
    """Successive halving over rounds within groups of comparable grid points; trains the
    survivors to the end. Returns the surviving grid positions."""
    alive = set(range(len(grid)))
    rung = FIRST_RUNG
    while True:
        for g in alive:
            for run in runs[g]:
                run.advance(rung)
        if rung >= MAX_ROUNDS:
            return alive
        for group in _comparable(grid, alive):
            running = [g for g in group if not all(r.done for r in runs[g])]
            ranked = sorted(group, key=lambda g: (np.mean([r.losses[r.best] for r in runs[g]]), g))
            alive -= {g for g in ranked[(len(group) + 1) // 2 :] if g in running}
        rung *= 2


def searched_rounds(grid: list[dict], rounds: float) -> float:
    """Boosting rounds a fold of ``search`` trains over the whole grid when every unpruned grid
    point would run ``rounds`` rounds: the cost model's count (``estimate``). No pruning
    (equal losses) is assumed beyond what halving guarantees: each rung drops the worse half."""
    total, rung, prev, rounds = 0.0, FIRST_RUNG, 0, min(rounds, MAX_ROUNDS)
    alive = [len(g) for g in _comparable(grid, set(range(len(grid))))]
    while True:
        total += sum(alive) * max(0.0, min(rounds, rung) - prev)
        if rung >= min(rounds, MAX_ROUNDS):
            return total
        alive = [(a + 1) // 2 for a in alive]
        prev, rung = rung, rung * 2


def _comparable(grid: list[dict], positions: set[int]) -> list[list[int]]:
    """Groups of grid positions whose rounds mean the same progress: equal learning rate and
    depth."""
    groups: dict[tuple, list[int]] = {}
    for g in sorted(positions):
        key = (grid[g].get("learning_rate"), grid[g].get("max_depth"))
        groups.setdefault(key, []).append(g)
    return list(groups.values())
