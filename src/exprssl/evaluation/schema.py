"""The schema of the files a benchmark writes, in one place: approach names, feature keys,
verdicts, the columns of ``results.csv`` / ``predictions.parquet`` / ``tuning.csv`` and the
paths of the output directory. The runner writes through it; ``results``, ``stats``,
``report`` and the tests read through it.

- An approach is named ``"<method>+<head>"`` for an SSL method with a head (``scarf+finetune``)
  and by its own name for a baseline or control (``logreg``): ``approach_name``.
- A feature key names one ``.npy`` of derived features (``FeatureKey``): ``X`` (preprocessed
  genes), ``pool``, ``pca``, ``random:<seed>``, ``Z:<method>:<pretrain seed>`` (a model's
  embeddings) or ``Z:<method>`` (a cell's embeddings, whichever pretrain seed it uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("ssl", "baseline", "control")
SSL_HEADS = ("linear_probe", "finetune")


class Verdict:
    """A verdict of an SSL approach against the fraction's best baseline."""

    BETTER = "SSL better"
    WORSE = "SSL worse"
    NO_DIFFERENCE = "no detectable difference"
    TOO_SMALL = "too small for a claim"
    ALL = (BETTER, WORSE, NO_DIFFERENCE, TOO_SMALL)


def approach_name(method: str, kind: str, head: str) -> str:
    """The one naming rule: ``method+head`` for SSL, the method's name otherwise."""
    return f"{method}+{head}" if kind == "ssl" else method


def approach_names(frame: pd.DataFrame) -> np.ndarray:
    """``approach_name`` of every row of a frame with method, kind and head columns."""
    return np.where(frame["kind"] == "ssl", frame["method"] + "+" + frame["head"], frame["method"])


@dataclass(frozen=True)
class FeatureKey:
    """Which derived features a cell reads (see the module docstring)."""

    family: str  # "X", "pool", "pca", "random" or "Z"
    method: str | None = None  # Z only
    seed: int | None = None  # random: the label seed; Z: the pretrain seed (None: the cell's)

    def __str__(self) -> str:
        parts = [self.family, self.method, None if self.seed is None else str(self.seed)]
        return ":".join(p for p in parts if p is not None)

    @classmethod
    def embedding(cls, method: str, pretrain_seed: int | None = None) -> FeatureKey:
        return cls("Z", method, pretrain_seed)

    @classmethod
    def random(cls, seed: int) -> FeatureKey:
        return cls("random", None, seed)


# ----------------------------------------------------------------------------- result files
RESULT_COLUMNS = [
    "split",
    "method",
    "kind",
    "head",
    "fraction",
    "n_labelled",
    "seed",
    "metric",
    "value",
]
PREDICTION_COLUMNS = ["split", "seed", "fraction", "approach", "test_index", "y_true", "y_pred"]
TUNING_COLUMNS = ["split", "seed", "fraction", "approach", "params", "note", "seconds"]
CELL_KEY = ["split", "approach", "fraction", "seed"]  # one cell of the benchmark
RESULT_ORDER = ["split", "method", "head", "fraction", "seed"]  # results.csv's row order


def cell_key(split, approach: str, fraction, seed) -> tuple:
    """A cell's identity, comparable across files (fractions rounded to 6 decimals)."""
    return int(split), str(approach), round(float(fraction), 6), int(seed)


@dataclass(frozen=True)
class Layout:
    """Paths of a benchmark's output directory."""

    out: Path

    @property
    def results(self) -> Path:
        return self.out / "results.csv"

    @property
    def predictions(self) -> Path:
        return self.out / "predictions.parquet"

    @property
    def tuning(self) -> Path:
        return self.out / "tuning.csv"

    @property
    def summary(self) -> Path:
        return self.out / "summary.csv"

    @property
    def attributions(self) -> Path:
        return self.out / "attributions.csv"

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.json"

    @property
    def settings(self) -> Path:
        return self.out / "settings.json"

    @property
    def splits(self) -> Path:
        return self.out / "splits.json"

    def cache(self, split: int) -> Path:
        return self.out / "cache" / f"split{split}"

    def model(self, split: int, method: str, pretrain_seed: int) -> Path:
        name = method if pretrain_seed == 0 else f"{method}-seed{pretrain_seed}"
        return self.out / "models" / f"split{split}" / name

    SUBDIRS = ("models", "histories", "embeddings", "predictions", "cache")
