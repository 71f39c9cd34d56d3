"""VIME self-supervised (Yoon et al. 2020): estimate the corruption mask, reconstruct the input."""

from __future__ import annotations

from torch import nn

from ..augment import Corruptor
from ..losses import vime_loss
from . import register
from .base import SSLMethod


@register("vime")
class VIME(SSLMethod):
    """Mask estimator (BCE) and feature estimator (MSE) heads on a shared encoder.

    The mask target is the set of entries whose value actually changed: a gene replaced by an
    equal value (common for zeros in counts) carries no signal and is not counted as corrupted.
    """

    defaults = {"mask_rate": 0.3, "replacement": "batch_permute", "corruption_mode": "bernoulli",
                "alpha": 2.0}

    def build(self):
        c = self.config
        self.corruptor = Corruptor(c["mask_rate"], c["replacement"], c["corruption_mode"])
        self.mask_head = nn.Linear(self.encoder.out_dim, self.n_genes)
        self.feature_head = nn.Linear(self.encoder.out_dim, self.n_genes)

    def loss(self, x):
        x_corrupt, _ = self.corruptor(x)
        target = x_corrupt != x
        h = self.encoder(x_corrupt)
        total, bce, mse = vime_loss(self.mask_head(h), target, self.feature_head(h), x, self.config["alpha"])
        return total, {"bce": bce.detach(), "mse": mse.detach()}
