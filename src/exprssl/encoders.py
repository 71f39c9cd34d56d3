"""The shared encoder and small MLP heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

# The encoder of Dradjat et al. (2025): 4 blocks of 256 units, dropout 0.2. The one definition
# of the default: method options, the benchmark and the baselines read it from here.
DEFAULT_HIDDEN_DIMS: tuple[int, ...] = (256, 256, 256, 256)
DEFAULT_DROPOUT: float = 0.2


def default_encoder() -> dict[str, Any]:
    """The default encoder's options as a fresh JSON-able dict:
    ``{"hidden_dims": [...], "dropout": ...}``."""
    return {"hidden_dims": list(DEFAULT_HIDDEN_DIMS), "dropout": DEFAULT_DROPOUT}


def _block(in_dim: int, out_dim: int, batchnorm: bool, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(out_dim))
    layers.append(nn.ReLU(inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class MLPEncoder(nn.Sequential):
    """[Linear -> BatchNorm -> ReLU -> Dropout] blocks; the embedding is the last block's output.

    The default (``DEFAULT_HIDDEN_DIMS``, ``DEFAULT_DROPOUT``) is the encoder of Dradjat et al.
    (2025).
    """

    def __init__(
        self,
        n_genes: int,
        hidden_dims: Sequence[int] = DEFAULT_HIDDEN_DIMS,
        dropout: float = DEFAULT_DROPOUT,
        batchnorm: bool = True,
    ):
        dims = [int(n_genes), *map(int, hidden_dims)]
        if len(dims) < 2:
            raise ValueError("hidden_dims needs at least one layer")
        layers = [
            m
            for a, b in zip(dims[:-1], dims[1:], strict=True)
            for m in _block(a, b, batchnorm, dropout)
        ]
        super().__init__(*layers)
        self.in_dim, self.out_dim = dims[0], dims[-1]


def mlp_head(
    in_dim: int, hidden: int, out_dim: int, n_layers: int = 2, batchnorm: bool = True
) -> nn.Sequential:
    """Projection / predictor / decoder head: (n_layers - 1) hidden blocks, then a linear output."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_layers - 1):
        layers += _block(d, hidden, batchnorm, 0.0)
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
