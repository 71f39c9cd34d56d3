"""What every SSL method provides to the trainer, the model and the benchmark."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from ..augment import MODES, SOURCES, Corruptor
from ..encoders import DEFAULT_DROPOUT, DEFAULT_HIDDEN_DIMS, MLPEncoder
from ..losses import LossOutput
from ..options import option, options_dict, validate_options


@dataclasses.dataclass(frozen=True)
class EncoderOptions:
    """Options of the MLP encoder every method shares (default: Dradjat et al. 2025)."""

    hidden_dims: list[int] = option(
        list(DEFAULT_HIDDEN_DIMS),
        "widths of the encoder's "
        "Linear-BatchNorm-ReLU-Dropout blocks; the last is the embedding size",
        ge=1,
    )
    dropout: float = option(
        DEFAULT_DROPOUT, "dropout probability after each encoder block", ge=0, lt=1
    )


def corruption_rate_option(default: float, paper_term: str) -> Any:
    return option(default, f"fraction of genes corrupted in a view ({paper_term})", gt=0, lt=1)


def replacement_option(default: str) -> Any:
    return option(
        default,
        "where corrupted genes' values come from: the gene's empirical marginal, "
        "uniform in its training range, another sample of the batch, or 0 (masking)",
        choices=SOURCES,
    )


def corruption_mode_option(default: str) -> Any:
    return option(
        default,
        "'fixed': exactly floor(rate x genes) genes per sample; 'bernoulli': "
        "each gene independently with the rate",
        choices=MODES,
    )


class SSLMethod(nn.Module):
    """An encoder plus whatever heads and augmentations a method's loss needs.

    A subclass sets ``Options`` (a frozen dataclass extending ``EncoderOptions``, fields made
    with ``options.option()``) and ``optimizer_defaults``, builds its heads from
    ``self.options`` in ``build()`` and returns a ``LossOutput`` from ``loss()``. Its ``config``
    is the options as a plain JSON-able dict, saved with the model and enough to rebuild it.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = EncoderOptions
    optimizer_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not (dataclasses.is_dataclass(cls.Options) and issubclass(cls.Options, EncoderOptions)):
            raise TypeError(f"{cls.__name__}.Options must be a dataclass extending EncoderOptions")

    def __init__(self, n_genes: int, **config: Any):
        super().__init__()
        self.n_genes = int(n_genes)
        self.options = validate_options(self.Options, config, self.name or type(self).__name__)
        self.config: dict[str, Any] = options_dict(self.options)
        self.encoder = MLPEncoder(n_genes, self.options.hidden_dims, self.options.dropout)
        self.build()

    def build(self) -> None:
        """Create heads and augmentations from ``self.options``."""

    def corruptors(self) -> Iterator[Corruptor]:
        return (m for m in self.modules() if isinstance(m, Corruptor))

    def fit_augmentations(self, X_train: torch.Tensor) -> None:
        """Give the augmentations the training statistics they draw from (called once before
        training)."""
        for c in self.corruptors():
            c.fit(X_train)

    def loss(self, x: torch.Tensor) -> LossOutput:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def on_train_batch_end(self, step: int, total_steps: int) -> None:
        """Per-step hook (BYOL's target EMA)."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)
