"""VIME self-supervised (Yoon et al. 2020): estimate the corruption mask, reconstruct the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..augment import Corruptor
from ..losses import vime_loss
from ..options import option
from . import register
from .base import (
    EncoderOptions,
    SSLMethod,
    corruption_mode_option,
    corruption_rate_option,
    replacement_option,
)


@dataclass(frozen=True)
class VIMEOptions(EncoderOptions):
    """VIME's options; defaults are the paper's (p_m = 0.3, alpha = 2, column-shuffle corruption).
    ``corruption_rate`` is the paper's mask probability p_m (formerly ``mask_rate``)."""

    ALIASES: ClassVar[dict[str, str]] = {"mask_rate": "corruption_rate"}  # saved models' old name

    corruption_rate: float = corruption_rate_option(0.3, "VIME's mask probability p_m")
    replacement: str = replacement_option("batch_permute")
    corruption_mode: str = corruption_mode_option("bernoulli")
    alpha: float = option(
        2.0, "weight of the feature-reconstruction MSE against the mask BCE (VIME's alpha)", ge=0
    )


@register("vime")
class VIME(SSLMethod):
    """Mask estimator (BCE) and feature estimator (MSE) heads on a shared encoder.

    The mask target is the set of entries whose value actually changed: a gene replaced by an
    equal value (common for zeros in counts) carries no signal and is not counted as corrupted.
    Loss parts: ``mask_bce`` and ``recon_mse``; total = mask_bce + alpha * recon_mse.
    """

    Options = VIMEOptions

    def build(self):
        o = self.options
        self.corruptor = Corruptor(o.corruption_rate, o.replacement, o.corruption_mode)
        self.mask_head = nn.Linear(self.encoder.out_dim, self.n_genes)
        self.feature_head = nn.Linear(self.encoder.out_dim, self.n_genes)

    def loss(self, x):
        x_corrupt, _ = self.corruptor(x)
        target = x_corrupt != x
        h = self.encoder(x_corrupt)
        return vime_loss(self.mask_head(h), target, self.feature_head(h), x, self.options.alpha)
