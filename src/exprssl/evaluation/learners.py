"""The learners every approach is fitted with, each tuned by inner cross-validation on the
labelled subset only (``tuning``): logistic regression on fixed features (genes, embeddings, PCA
scores), XGBoost, and an encoder + softmax head trained by gradient descent (``heads``).
Baselines (``baselines/``) and the SSL heads call them; each returns (class probabilities of the
test rows over every class of the task, the chosen hyperparameters).

Tuning costs what the grid needs and no more: the linear models follow warm-started
regularisation paths (``fit_by_path``), XGBoost quantises each inner fold once for every grid
point and stops the grid points that fall behind their comparable peers (``boosting``), and a
stacked torch head drops each model as it early-stops (``heads``). The torch heads and XGBoost
run on the cell's device (``GroupJob.device``); scikit-learn's linear models on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .heads import StackedMLP, predict_proba, train_stacked
from .jobs import GroupJob
from .metrics import score
from .screening import screened
from .tuning import GRIDS, pick, regularisation_paths


def full_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over the classes a model saw, spread into columns of every class."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


def fit_by_inner_cv(
    F_lab,
    y_lab,
    F_test,
    grid: list[dict[str, Any]],
    folds,
    job: GroupJob,
    fit: Callable,
    proba: Callable,
):
    """The grid entry with the best mean inner-CV score (``fit(F, y, params, seed)`` then
    ``proba(model, F, params, n_classes)`` on each fold), refit on the whole labelled subset;
    without folds the grid's first entry (its default)."""
    grid = grid if folds is not None else grid[:1]
    cv = []
    for params in grid if len(grid) > 1 else []:
        fold_scores = []
        for hold in folds:
            rows = np.setdiff1d(np.arange(len(y_lab)), hold)
            m = fit(F_lab[rows], y_lab[rows], params, job.seed)
            pred = proba(m, F_lab[hold], params, job.n_classes).argmax(1)
            fold_scores.append(score(y_lab[hold], pred, job.metric))
        cv.append(float(np.mean(fold_scores)))
    params = grid[pick(cv)] if cv else grid[0]
    model = fit(F_lab, y_lab, params, job.seed)
    return proba(model, F_test, params, job.n_classes), params


def fit_logistic(F_fit, y_fit, params, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    F_fit = F_fit[:, : params["k"]] if "k" in params else F_fit
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=params.get("C", 1.0), max_iter=3000, random_state=seed),
    ).fit(F_fit, y_fit)


def logistic_proba(model, F, params, n_classes):
    """A fitted classifier's probabilities over every class (on the first ``k`` columns, PCA's
    scores, when ``params`` hold one)."""
    F = F[:, : params["k"]] if "k" in params else F
    return full_proba(model.predict_proba(F), model.classes_, n_classes)


def fit_linear(F_lab, y_lab, F_test, grid_name, folds, job: GroupJob):
    """Logistic regression on fixed features (genes, embeddings, PCA scores), C (or PCA's k)
    chosen by inner CV; refit on the whole labelled subset."""
    grid = GRIDS[grid_name] if folds is not None else GRIDS[grid_name][:1]
    if grid_name == "pca":
        grid = [p for p in grid if p["k"] <= F_lab.shape[1]] or [{"k": F_lab.shape[1]}]
        return fit_by_inner_cv(F_lab, y_lab, F_test, grid, folds, job, fit_logistic, logistic_proba)
    return fit_by_path(F_lab, y_lab, F_test, grid, folds, job, _logistic)


def _logistic(params: dict[str, Any], seed: int, warm_start: bool = False):
    """``fit_logistic``'s classifier (without its scaler)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=params.get("C", 1.0), max_iter=3000, random_state=seed, warm_start=warm_start
    )


def fit_by_path(
    F_lab, y_lab, F_test, grid, folds, job: GroupJob, make: Callable, quiet=False, screen=False
):
    """``fit_by_inner_cv`` for a standardised linear model (same grid, folds and choice rule),
    each fold fitted along warm-started regularisation paths (``tuning.regularisation_paths``):
    one scaler per fold, and each grid point starting from the previous one's solution on its
    path, strongest regularisation first. ``make(params, seed, warm_start)`` builds the
    classifier; the final model is fit from scratch on the whole labelled subset, as before.
    ``quiet`` silences the iteration cap's convergence warnings; ``screen``: every fit reads its
    own training rows' top genes by ANOVA F (``screening.screened``; all of them when few)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grid = grid if folds is not None else grid[:1]
    scores = np.zeros((len(grid), len(folds or [])))
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", ConvergenceWarning)
        for j, hold in enumerate(folds if len(grid) > 1 else []):
            rows = np.setdiff1d(np.arange(len(y_lab)), hold)
            genes = screened(F_lab, y_lab[rows], rows=rows) if screen else None
            part = _part(F_lab, rows, genes)
            scaler = StandardScaler().fit(part)
            Z, Z_hold = scaler.transform(part), scaler.transform(_part(F_lab, hold, genes))
            for path in regularisation_paths(grid):
                model = make(grid[path[0]], job.seed, warm_start=True)
                for i in path:
                    model.set_params(C=grid[i].get("C", 1.0), **_path_free(grid[i])).fit(
                        Z, y_lab[rows]
                    )
                    proba = full_proba(model.predict_proba(Z_hold), model.classes_, job.n_classes)
                    scores[i, j] = score(y_lab[hold], proba.argmax(1), job.metric)
        params = grid[pick(scores.mean(1).tolist())] if scores.size else grid[0]
        genes = screened(F_lab, y_lab) if screen else None
        model = make_pipeline(StandardScaler(), make(params, job.seed))
        model.fit(_part(F_lab, None, genes), y_lab)
    return logistic_proba(model, _part(F_test, None, genes), params, job.n_classes), params


def _part(X: np.ndarray, rows: np.ndarray | None, genes: np.ndarray | None) -> np.ndarray:
    """``X``'s ``rows`` (None: all) and ``genes`` (None: all), copying no more than those."""
    if genes is None:
        return X if rows is None else X[rows]
    return X[:, genes] if rows is None else X[np.ix_(rows, genes)]


def _path_free(params: dict[str, Any]) -> dict[str, Any]:
    """A grid point's settings other than C (constant along its path)."""
    return {k: v for k, v in params.items() if k != "C"}


def fit_xgboost(F_lab, y_lab, F_test, folds, job: GroupJob, default_rounds: int = 100):
    """XGBoost with depth / min_child_weight / learning rate chosen by inner CV, each fold
    early-stopping on its held-out part, the grid searched by successive halving
    (``boosting.search``); the final model, fit on the whole labelled subset, runs the chosen
    setting's median best number of rounds. Every fit sees its own training rows' top genes by
    ANOVA F (``screening.screened``)."""
    import xgboost as xgb
    from sklearn.preprocessing import LabelEncoder

    from . import boosting

    enc = LabelEncoder().fit(y_lab)
    if len(enc.classes_) == 1:
        return full_proba(np.ones((len(F_test), 1)), enc.classes_, job.n_classes), {}
    grid, y, k = GRIDS["xgboost"], enc.transform(y_lab), len(enc.classes_)
    if folds is None:
        params, rounds = grid[0], default_rounds
    else:
        best, rounds, _ = boosting.search(
            F_lab, y, folds, grid, k, job.seed, job.metric, job.device
        )
        params = grid[best]
    genes = screened(F_lab, y)  # the final model's genes: on all its labelled rows
    model = xgb.train(
        boosting.booster_params(params, k, job.seed, job.device),
        boosting.quantised(F_lab[:, genes], y),
        num_boost_round=rounds,
    )
    proba = boosting.class_proba(model, F_test[:, genes], rounds)
    return full_proba(proba, enc.classes_, job.n_classes), {**params, "n_estimators": rounds}


def _val_mask(job: GroupJob, n: int) -> np.ndarray:
    """The rows of the labelled subset (``n`` of them) in the job's validation part: where the
    final torch model early-stops."""
    pos = {int(c): i for i, c in enumerate(job.lab)}
    mask = np.zeros(n, dtype=bool)
    mask[np.array([pos[int(c)] for c in job.val], dtype=int)] = True
    return mask


def fit_torch(F_lab, y_lab, F_test, encoder, folds, job: GroupJob):
    """Encoder (pretrained, random-init or none) + softmax head, with the learning-rate scale
    chosen by inner CV: each grid value trains its fold models at once, as one stacked network;
    then the chosen value's final model trains, early-stopping on the labelled subset's
    validation part, exactly as it would have beside its fold models (``train_stacked``'s
    ``only``): the other values' final models, never used, are never trained. The networks and
    their data live on the job's device."""
    import torch

    n = len(y_lab)
    final_val = _val_mask(job, n)
    folds = folds or []
    train_mask = torch.from_numpy(
        np.stack([*[~np.isin(np.arange(n), h) for h in folds], ~final_val])
    )
    val_mask = torch.from_numpy(np.stack([*[np.isin(np.arange(n), h) for h in folds], final_val]))
    final = torch.arange(len(train_mask)) == len(folds)
    device = torch.device(job.device)
    X = torch.as_tensor(np.ascontiguousarray(F_lab), dtype=torch.float32).to(device)
    Xt = torch.as_tensor(np.ascontiguousarray(F_test), dtype=torch.float32).to(device)
    y = torch.as_tensor(y_lab, dtype=torch.long).to(device)
    grid = GRIDS["torch"] if folds else GRIDS["torch"][:1]
    nets, cv, losses = [], [], []
    for params in grid:
        net = StackedMLP(encoder, X.shape[1], job.n_classes, len(train_mask), seed=job.seed)
        nets.append(net.to(device))
        if folds:
            best = train_stacked(
                net, X, y, train_mask, val_mask, job.recipe, params["lr_scale"], job.seed, ~final
            )
            proba = predict_proba(net, X)
            fold_scores = [
                score(y_lab[h], proba[f, h].argmax(1), job.metric) for f, h in enumerate(folds)
            ]
            cv.append(float(np.mean(fold_scores)))
            losses.append(float(np.mean(best[: len(folds)])))
    chosen = pick(cv, losses) if cv else 0
    net, lr_scale = nets[chosen], grid[chosen]["lr_scale"]
    train_stacked(net, X, y, train_mask, val_mask, job.recipe, lr_scale, job.seed, final)
    return predict_proba(net, Xt)[-1].astype(np.float64), dict(grid[chosen])


def train_torch(F_lab, y_lab, encoder, params, job, seed: int = 0):
    """One encoder + softmax head trained as ``fit_torch``'s final model (``params``: the chosen
    learning-rate scale; early stopping on the job's validation part), returned as the trained
    one-model ``StackedMLP``: the network an attribution runs through."""
    import torch

    val = _val_mask(job, len(y_lab))
    X = torch.as_tensor(np.ascontiguousarray(F_lab), dtype=torch.float32)
    net = StackedMLP(encoder, X.shape[1], job.n_classes, 1, seed=seed)
    train_stacked(
        net,
        X,
        torch.as_tensor(y_lab, dtype=torch.long),
        torch.from_numpy(~val)[None],
        torch.from_numpy(val)[None],
        job.recipe,
        lr_scale=params.get("lr_scale", 1.0),
        seed=seed,
    )
    return net
