"""Evaluate one labelled subset: every approach still missing for one (split, seed, fraction).

A ``GroupJob`` is plain data (indices, paths, the recipe), so it runs the same in a worker
process or inline. Features are read from the split's ``.npy`` files, memory-mapped, so every
worker shares one copy; the worker never writes: the parent collects the outcomes and owns the
result files (resume and atomic writes stay in one place).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .baselines import BASELINES
from .heads import HeadRecipe, StackedMLP, predict_proba, train_stacked
from .metrics import classification_metrics, score
from .tuning import GRIDS, MAX_FOLDS, cv_note, inner_folds, pick


@dataclass(frozen=True)
class Approach:
    """What is scored: an SSL method with a head, a supervised baseline, or a control."""

    method: str  # SSL method or baseline name
    kind: str  # "ssl", "baseline" or "control"
    head: str  # "linear_probe" / "finetune" for SSL; the baseline's name otherwise

    @property
    def name(self) -> str:
        return f"{self.method}+{self.head}" if self.kind == "ssl" else self.method


SSL_HEADS = ("linear_probe", "finetune")


def learner_of(a: Approach, protocol: str) -> tuple[str, str]:
    """(learner, features) of an approach: the paper protocol's frozen head is a softmax layer
    trained by gradient descent on the embeddings, the default protocol's a logistic probe."""
    if a.kind != "ssl":
        return BASELINES[a.method][1:]
    if a.head == "finetune":
        return "torch", "X"
    return ("torch" if protocol == "paper" else "logistic"), f"Z:{a.method}"


@dataclass
class GroupJob:
    split: int
    seed: int
    fraction: float
    lab: np.ndarray  # cohort positions of the labelled subset
    val: np.ndarray  # its part carved out for early stopping of the torch heads
    test: np.ndarray
    y: np.ndarray  # class code per cohort position (-1: not in the task)
    n_classes: int
    approaches: list[Approach]
    features: dict[str, str]  # "X", "pca", "random", "Z:<method>" -> .npy path
    models: dict[str, str] = field(default_factory=dict)  # method -> model directory, for fine-tuning
    encoder: dict[str, Any] = field(default_factory=dict)  # the MLP baseline's architecture
    recipe: HeadRecipe = field(default_factory=HeadRecipe)
    tune: bool = True
    metric: str = "balanced_accuracy"
    protocol: str = "default"
    classes: np.ndarray | None = None  # class names, for the tuning notes


@dataclass
class CellOutcome:
    approach: Approach
    split: int
    seed: int
    fraction: float
    n_labelled: int
    scores: dict[str, float]
    test_index: np.ndarray  # cohort positions of the test samples
    y_true: np.ndarray
    y_pred: np.ndarray  # predicted class codes
    params: dict[str, Any]
    note: str
    seconds: float


@lru_cache(maxsize=64)
def _array(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


@lru_cache(maxsize=8)
def _pretrained_encoder(model_dir: str):
    from ..model import SSLModel

    model = SSLModel.load(model_dir)
    method = getattr(model, "method_", None) or model.method
    return method.encoder


def _full_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


# ----------------------------------------------------------------------------- learners
def _logistic(F_fit, y_fit, params, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    F_fit = F_fit[:, : params["k"]] if "k" in params else F_fit
    return make_pipeline(StandardScaler(), LogisticRegression(C=params.get("C", 1.0), max_iter=3000,
                                                              random_state=seed)).fit(F_fit, y_fit)


def _logistic_proba(model, F, params, n_classes):
    F = F[:, : params["k"]] if "k" in params else F
    return _full_proba(model.predict_proba(F), model.classes_, n_classes)


def fit_linear(F_lab, y_lab, F_test, grid_name, folds, job: GroupJob):
    """Logistic regression on fixed features (genes, embeddings, PCA scores), C (or PCA's k)
    chosen by inner CV; refit on the whole labelled subset."""
    grid = GRIDS[grid_name] if folds is not None else GRIDS[grid_name][:1]
    if grid_name == "pca":
        grid = [p for p in grid if p["k"] <= F_lab.shape[1]] or [{"k": F_lab.shape[1]}]
    cv = []
    for params in grid if len(grid) > 1 else []:
        fold_scores = []
        for hold in folds:
            fit = np.setdiff1d(np.arange(len(y_lab)), hold)
            m = _logistic(F_lab[fit], y_lab[fit], params, job.seed)
            pred = _logistic_proba(m, F_lab[hold], params, job.n_classes).argmax(1)
            fold_scores.append(score(y_lab[hold], pred, job.metric))
        cv.append(float(np.mean(fold_scores)))
    params = grid[pick(cv)] if cv else grid[0]
    model = _logistic(F_lab, y_lab, params, job.seed)
    return _logistic_proba(model, F_test, params, job.n_classes), params


def _xgb(params, n_estimators, seed, n_classes: int, early_stopping=None):
    from xgboost import XGBClassifier

    # two classes train binary:logistic, whose early-stopping metric is logloss (mlogloss fails)
    return XGBClassifier(n_estimators=n_estimators, subsample=0.8, colsample_bytree=0.5, tree_method="hist",
                         max_bin=64, n_jobs=1, random_state=seed, verbosity=0, early_stopping_rounds=early_stopping,
                         eval_metric="logloss" if n_classes == 2 else "mlogloss", **params)


def fit_xgboost(F_lab, y_lab, F_test, folds, job: GroupJob, max_rounds: int = 300, default_rounds: int = 100):
    """XGBoost with depth / min_child_weight / learning rate chosen by inner CV, each fold
    early-stopping on its held-out part; the final model, fit on the whole labelled subset,
    runs the chosen setting's median best number of rounds."""
    from sklearn.preprocessing import LabelEncoder

    enc = LabelEncoder().fit(y_lab)
    if len(enc.classes_) == 1:
        return _full_proba(np.ones((len(F_test), 1)), enc.classes_, job.n_classes), {}
    grid = GRIDS["xgboost"]
    if folds is None:
        params, rounds = grid[0], default_rounds
    else:
        cv, losses, best_rounds = [], [], []
        for params in grid:
            fold_scores, fold_losses, fold_rounds = [], [], []
            for hold in folds:
                fit = np.setdiff1d(np.arange(len(y_lab)), hold)
                m = _xgb(params, max_rounds, job.seed, len(enc.classes_), early_stopping=20)
                m.fit(F_lab[fit], enc.transform(y_lab[fit]), eval_set=[(F_lab[hold], enc.transform(y_lab[hold]))],
                      verbose=False)
                pred = enc.classes_[m.predict_proba(F_lab[hold]).argmax(1)]
                fold_scores.append(score(y_lab[hold], pred, job.metric))
                fold_losses.append(m.best_score)
                fold_rounds.append(m.best_iteration + 1)
            cv.append(float(np.mean(fold_scores)))
            losses.append(float(np.mean(fold_losses)))
            best_rounds.append(int(np.median(fold_rounds)))
        best = pick(cv, losses)
        params, rounds = grid[best], best_rounds[best]
    model = _xgb(params, rounds, job.seed, len(enc.classes_)).fit(F_lab, enc.transform(y_lab))
    return _full_proba(model.predict_proba(F_test), enc.classes_, job.n_classes), {**params, "n_estimators": rounds}


def fit_torch(F_lab, y_lab, F_test, encoder, folds, job: GroupJob, freeze: bool = False):
    """Encoder (pretrained, random-init or none) + softmax head, with the learning-rate scale
    chosen by inner CV: each grid value trains its fold models and the final model at once, as
    one stacked network. The final model early-stops on the labelled subset's validation part."""
    import torch

    n = len(y_lab)
    pos = {int(c): i for i, c in enumerate(job.lab)}
    val_pos = np.array([pos[int(c)] for c in job.val], dtype=int)
    final_train = np.ones(n, dtype=bool)
    final_train[val_pos] = False
    final_val = ~final_train
    folds = folds or []
    train_mask = np.stack([*[~np.isin(np.arange(n), h) for h in folds], final_train])
    val_mask = np.stack([*[np.isin(np.arange(n), h) for h in folds], final_val])
    X = torch.as_tensor(np.ascontiguousarray(F_lab), dtype=torch.float32)
    Xt = torch.as_tensor(np.ascontiguousarray(F_test), dtype=torch.float32)
    y = torch.as_tensor(y_lab, dtype=torch.long)
    grid = GRIDS["torch"] if folds else GRIDS["torch"][:1]
    cv, losses, test_proba = [], [], []
    for params in grid:
        net = StackedMLP(encoder, X.shape[1], job.n_classes, len(train_mask), freeze_encoder=freeze, seed=job.seed)
        best = train_stacked(net, X, y, torch.from_numpy(train_mask), torch.from_numpy(val_mask), job.recipe,
                             lr_scale=params["lr_scale"], seed=job.seed)
        if folds:
            proba = predict_proba(net, X)
            cv.append(float(np.mean([score(y_lab[h], proba[f, h].argmax(1), job.metric) for f, h in enumerate(folds)])))
            losses.append(float(np.mean(best[: len(folds)])))
        test_proba.append(predict_proba(net, Xt)[-1])
    chosen = pick(cv, losses) if cv else 0
    return test_proba[chosen].astype(np.float64), dict(grid[chosen])


# ----------------------------------------------------------------------------- one group
def evaluate_group(job: GroupJob) -> list[CellOutcome]:
    """Score every approach of ``job`` on its test samples."""
    import torch

    from ..encoders import MLPEncoder

    y_lab, y_test = job.y[job.lab], job.y[job.test]
    outcomes = []
    for a in job.approaches:
        t0 = time.perf_counter()
        learner, feats = learner_of(a, job.protocol)
        folds = inner_folds(y_lab, job.seed, MAX_FOLDS[learner]) if job.tune else None
        note = cv_note(y_lab, folds, job.classes) if job.tune else "defaults: tuning off"
        key = {"random": f"random:{job.seed}"}.get(feats, feats)
        F = _array(job.features[key])
        F_lab, F_test = np.asarray(F[job.lab]), np.asarray(F[job.test])
        if learner == "logistic" or learner == "pca":
            proba, params = fit_linear(F_lab, y_lab, F_test, learner, folds, job)
        elif learner == "xgboost":
            proba, params = fit_xgboost(F_lab, y_lab, F_test, folds, job)
        elif a.kind == "ssl" and a.head == "finetune":
            proba, params = fit_torch(F_lab, y_lab, F_test, _pretrained_encoder(job.models[a.method]), folds, job)
        elif a.kind == "ssl":  # the paper's frozen head: a softmax layer on the embeddings
            proba, params = fit_torch(F_lab, y_lab, F_test, None, folds, job)
        else:  # the MLP baseline: the fine-tuning recipe from a random init
            torch.manual_seed(job.seed)
            enc = MLPEncoder(F_lab.shape[1], job.encoder["hidden_dims"], job.encoder["dropout"])
            proba, params = fit_torch(F_lab, y_lab, F_test, enc, folds, job)
        scores = classification_metrics(y_test, proba, np.arange(job.n_classes))
        outcomes.append(CellOutcome(a, job.split, job.seed, job.fraction, len(job.lab), scores, job.test, y_test,
                                    proba.argmax(1), params, note, time.perf_counter() - t0))
    return outcomes
