"""Evaluate one labelled subset: every approach still missing for one (split, seed, fraction).

A ``GroupJob`` is plain data (indices, paths, the recipe), so it runs the same in a worker
process or inline. Features are read from the split's ``.npy`` files, memory-mapped, so every
worker shares one copy; the worker never writes: the parent collects the outcomes and owns the
result files (resume and atomic writes stay in one place).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..model_layout import ModelLayout
from ..utils import plural
from .baselines import get_baseline
from .jobs import Approach as Approach  # re-exported: planning, results and estimate read it
from .jobs import GroupJob as GroupJob
from .learners import fit_linear, fit_torch
from .metrics import classification_metrics
from .schema import GENES, FeatureKey
from .tuning import MAX_FOLDS, cv_note, inner_folds


def ssl_learner(a: Approach) -> tuple[str, FeatureKey]:
    """(learner, feature key) of an SSL head: fine-tuning trains the encoder on the genes; the
    frozen head is a logistic probe on the embeddings (under either protocol)."""
    if a.head == "finetune":
        return "torch", GENES
    return "logistic", FeatureKey.embedding(a.method)


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


def _array(path: str) -> np.ndarray:
    """A feature file, memory-mapped once per process and version of the file: a long-lived
    process (a Dask worker, the reused local pool, a notebook) that served a run whose output
    directory was since replaced never reads the old file's contents under the same path."""
    return _mapped(path, _version(path))


def _pretrained_encoder(model_dir: str):
    return _encoder(model_dir, _version(str(ModelLayout(model_dir).weights)))


def _version(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


@lru_cache(maxsize=64)
def _mapped(path: str, version: tuple) -> np.ndarray:
    return np.load(path, mmap_mode="r")


@lru_cache(maxsize=8)
def _encoder(model_dir: str, version: tuple):
    from ..model import SSLModel

    return SSLModel.load(model_dir).method_.encoder


def evaluate_group(job: GroupJob) -> list[CellOutcome]:
    """Score every approach of ``job`` on its test samples: baselines and controls through
    their registry entry (``baselines/``), SSL heads through ``_fit_ssl``."""
    y_lab, y_test = job.y[job.lab], job.y[job.test]
    outcomes = []
    for a in job.approaches:
        t0 = time.perf_counter()
        if a.kind == "ssl":
            learner, key = ssl_learner(a)
            own = FeatureKey.genes(a.method)  # a given model's own preprocessing of the genes
            key = own if key == GENES and own in job.features else key
            max_folds = MAX_FOLDS[learner]
        else:
            baseline = get_baseline(a.method)
            key, max_folds = baseline.feature_key(job.seed), baseline.max_folds
        folds = inner_folds(y_lab, job.seed, max_folds) if job.tune else None
        note = cv_note(y_lab, folds, job.classes) if job.tune else "kept the defaults (tuning off)"
        F = _array(job.features[key])
        F_lab, F_test = np.asarray(F[job.lab]), np.asarray(F[job.test])
        if a.kind == "ssl":
            proba, params = _fit_ssl(a, F_lab, y_lab, F_test, folds, job)
        else:
            proba, params = baseline.fit_predict(F_lab, y_lab, F_test, folds, job)
        proba, diverged = _finite(proba)
        note = "; ".join(x for x in (note, diverged) if x)
        scores = classification_metrics(y_test, proba, np.arange(job.n_classes))
        outcomes.append(
            CellOutcome(
                a,
                job.split,
                job.seed,
                job.fraction,
                len(job.lab),
                scores,
                job.test,
                y_test,
                proba.argmax(1),
                params,
                note,
                time.perf_counter() - t0,
            )
        )
    return outcomes


def _finite(proba: np.ndarray) -> tuple[np.ndarray, str]:
    """A network that diverged gives NaN probabilities: its rows become uniform (argmax: the first
    class, so the cell reads as the single-class prediction it is and is flagged), with a note,
    instead of ending a long run in the metrics."""
    bad = ~np.isfinite(proba).all(1)
    if not bad.any():
        return proba, ""
    proba = proba.copy()
    proba[bad] = 1.0 / proba.shape[1]
    return proba, (
        f"diverged: non-finite outputs for {plural(int(bad.sum()), 'test sample')}, "
        "scored as uniform"
    )


def _fit_ssl(a: Approach, F_lab, y_lab, F_test, folds, job: GroupJob):
    """An SSL head: the pretrained encoder fine-tuned, or a logistic probe on the embeddings
    (under either protocol)."""
    if a.head == "finetune":
        encoder = _pretrained_encoder(job.models[a.method])
        return fit_torch(F_lab, y_lab, F_test, encoder, folds, job)
    return fit_linear(F_lab, y_lab, F_test, "logistic", folds, job)
