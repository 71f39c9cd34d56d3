"""What a cell is handed: the ``Approach`` it scores and the ``GroupJob`` of one labelled subset,
plain data (indices, paths, the recipe) that runs the same in a worker process or inline. The
cells (``cells``) and the learners they call (``learners``) both read it, so it lives below
both of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .heads import HeadRecipe
from .schema import Features, approach_name


@dataclass(frozen=True)
class Approach:
    """What is scored: an SSL method with a head, a supervised baseline, or a control."""

    method: str  # SSL method or baseline name
    kind: str  # "ssl", "baseline" or "control"
    head: str  # "linear_probe" / "finetune" for SSL; the baseline's name otherwise

    @property
    def name(self) -> str:
        return approach_name(self.method, self.kind, self.head)


@dataclass
class GroupJob:
    """Every approach still missing for one (split, seed, fraction): one unit of work."""

    split: int
    seed: int
    fraction: float
    lab: np.ndarray  # cohort positions of the labelled subset
    val: np.ndarray  # its part carved out for early stopping of the torch heads
    test: np.ndarray
    y: np.ndarray  # class code per cohort position (-1: not in the task)
    n_classes: int
    approaches: list[Approach]
    features: Features  # the split's derived features (GENES, PCA, random, embeddings)
    models: dict[str, str] = field(
        default_factory=dict
    )  # method -> model directory, for fine-tuning
    encoder: dict[str, Any] = field(default_factory=dict)  # the MLP baseline's architecture
    recipe: HeadRecipe = field(default_factory=HeadRecipe)
    tune: bool = True
    metric: str = "balanced_accuracy"
    classes: np.ndarray | None = None  # class names, for the tuning notes
    device: str = "cpu"  # torch device of the torch heads and XGBoost ("cuda:0": that GPU)
