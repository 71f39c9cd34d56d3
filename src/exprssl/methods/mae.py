"""Masked / denoising autoencoder: reconstruct the original values of corrupted genes."""

from __future__ import annotations

from ..augment import Corruptor
from ..encoders import mlp_head
from ..losses import masked_mse
from . import register
from .base import SSLMethod


@register("mae")
class MaskedAutoencoder(SSLMethod):
    """``replacement="zero"`` masks genes to 0 (on z-scored data: the gene's mean); any other
    Corruptor source (marginal, uniform, batch_permute) makes it a denoising autoencoder."""

    defaults = {"mask_rate": 0.3, "replacement": "zero", "corruption_mode": "fixed",
                "decoder_hidden": 256, "unmasked_weight": 0.0}

    def build(self):
        c = self.config
        self.corruptor = Corruptor(c["mask_rate"], c["replacement"], c["corruption_mode"])
        self.decoder = mlp_head(self.encoder.out_dim, c["decoder_hidden"], self.n_genes)

    def loss(self, x):
        x_corrupt, mask = self.corruptor(x)
        loss = masked_mse(self.decoder(self.encoder(x_corrupt)), x, mask, self.config["unmasked_weight"])
        return loss, {}
