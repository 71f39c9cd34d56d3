"""Masked / denoising autoencoder: reconstruct the original values of corrupted genes."""

from __future__ import annotations

from ..augment import Corruptor, corruption_mask, zero_mask
from ..encoders import mlp_head
from ..errors import ConfigError
from ..losses import masked_mse
from . import register
from .base import SSLMethod


@register("mae")
class MaskedAutoencoder(SSLMethod):
    """``replacement="zero"`` zero-masks genes (z-scored data: 0 is the gene's mean); any
    Corruptor source (marginal, uniform, batch_permute) makes it a denoising autoencoder."""

    defaults = {"mask_rate": 0.3, "replacement": "zero", "corruption_mode": "fixed",
                "decoder_hidden": 256, "unmasked_weight": 0.0}

    def build(self):
        c = self.config
        if c["replacement"] != "zero":
            self.corruptor = Corruptor(c["mask_rate"], c["replacement"], c["corruption_mode"])
        elif c["corruption_mode"] not in ("fixed", "bernoulli"):
            raise ConfigError(f"mae: unknown corruption_mode '{c['corruption_mode']}'")
        self.decoder = mlp_head(self.encoder.out_dim, c["decoder_hidden"], self.n_genes)

    def loss(self, x):
        c = self.config
        if c["replacement"] == "zero":
            if c["corruption_mode"] == "fixed":
                mask = corruption_mask(x.shape[0], x.shape[1], c["mask_rate"], "fixed", device=x.device)
                x_corrupt = x.masked_fill(mask, 0.0)
            else:
                x_corrupt, mask = zero_mask(x, c["mask_rate"])
        else:
            x_corrupt, mask = self.corruptor(x)
        loss = masked_mse(self.decoder(self.encoder(x_corrupt)), x, mask, c["unmasked_weight"])
        return loss, {}
