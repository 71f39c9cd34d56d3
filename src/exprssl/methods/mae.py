"""Masked / denoising autoencoder: reconstruct the original values of corrupted genes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..augment import Corruptor
from ..encoders import mlp_head
from ..losses import masked_mse
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
class MAEOptions(EncoderOptions):
    """The masked autoencoder's options (``corruption_rate`` is the mask rate; formerly
    ``mask_rate``)."""

    ALIASES: ClassVar[dict[str, str]] = {"mask_rate": "corruption_rate"}  # saved models' old name

    corruption_rate: float = corruption_rate_option(0.3, "the mask rate")
    replacement: str = replacement_option("zero")
    corruption_mode: str = corruption_mode_option("fixed")
    decoder_hidden: int = option(256, "hidden width of the decoder", ge=1)
    unmasked_weight: float = option(
        0.0, "weight of the reconstruction error on the genes left intact", ge=0
    )


@register("mae")
class MaskedAutoencoder(SSLMethod):
    """``replacement="zero"`` masks genes to 0 (on z-scored data: the gene's mean); any other
    Corruptor source (marginal, uniform, batch_permute) makes it a denoising autoencoder.
    Loss parts: ``masked_mse`` and ``unmasked_mse``."""

    Options = MAEOptions

    def build(self):
        o = self.options
        self.corruptor = Corruptor(o.corruption_rate, o.replacement, o.corruption_mode)
        self.decoder = mlp_head(self.encoder.out_dim, o.decoder_hidden, self.n_genes)

    def loss(self, x):
        x_corrupt, mask = self.corruptor(x)
        return masked_mse(
            self.decoder(self.encoder(x_corrupt)), x, mask, self.options.unmasked_weight
        )
