"""Barlow Twins (Zbontar et al. 2021): decorrelate embedding dimensions across two views."""

from __future__ import annotations

from ..augment import Corruptor, gaussian_noise
from ..encoders import mlp_head
from ..losses import barlow_twins_loss
from . import register
from .base import SSLMethod


@register("barlow")
class BarlowTwins(SSLMethod):
    defaults = {"corruption_rate": 0.3, "replacement": "marginal", "corruption_mode": "fixed",
                "noise_std": 0.0, "proj_hidden": 1024, "proj_dim": 1024, "lambd": 5e-3}

    def build(self):
        c = self.config
        self.corruptor = Corruptor(c["corruption_rate"], c["replacement"], c["corruption_mode"])
        self.projector = mlp_head(self.encoder.out_dim, c["proj_hidden"], c["proj_dim"])

    def loss(self, x):
        views = [gaussian_noise(self.corruptor(x)[0], self.config["noise_std"]) for _ in range(2)]
        z1, z2 = (self.projector(self.encoder(v)) for v in views)
        loss = barlow_twins_loss(z1, z2, self.config["lambd"])
        return loss, {}
