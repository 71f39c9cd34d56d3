"""What every SSL method provides to the trainer, the model and the benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from ..augment import Corruptor
from ..encoders import MLPEncoder

ENCODER_DEFAULTS: dict[str, Any] = {"hidden_dims": [256, 256, 256, 256], "dropout": 0.2}


class SSLMethod(nn.Module):
    """An encoder plus whatever heads and augmentations a method's loss needs.

    A subclass sets ``name``, ``defaults`` (its hyperparameters; encoder keys are added) and
    ``optimizer_defaults``, builds its heads in ``build()`` and implements ``loss()``. Its
    ``config`` is a plain JSON-able dict, saved with the model and enough to rebuild it.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    optimizer_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = {**ENCODER_DEFAULTS, **cls.defaults}

    def __init__(self, n_genes: int, **config: Any):
        super().__init__()
        self.n_genes = int(n_genes)
        self.config = {**self.defaults, **config}
        if isinstance(self.config.get("hidden_dims"), tuple):
            self.config["hidden_dims"] = list(self.config["hidden_dims"])
        self.encoder = MLPEncoder(n_genes, self.config["hidden_dims"], self.config["dropout"])
        self.build()

    def build(self) -> None:
        """Create heads and augmentations from ``self.config``."""

    def corruptors(self) -> Iterator[Corruptor]:
        return (m for m in self.modules() if isinstance(m, Corruptor))

    def fit_augmentations(self, X_train: torch.Tensor) -> None:
        """Give the augmentations the training statistics they draw from (called once before training)."""
        for c in self.corruptors():
            c.fit(X_train)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Per-step hook (BYOL's target EMA)."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)
