"""SCARF (Bahri et al. 2022): contrastive learning with random feature corruption."""

from __future__ import annotations

from ..augment import Corruptor
from ..encoders import mlp_head
from ..losses import nt_xent
from . import register
from .base import SSLMethod


@register("scarf")
class SCARF(SSLMethod):
    """A clean anchor and a view with 30% of genes replaced from their marginals, pulled together
    under NT-Xent against the other 2N-2 views of the batch (temperature 1.0, as in the paper)."""

    defaults = {"corruption_rate": 0.3, "replacement": "marginal", "corruption_mode": "fixed",
                "temperature": 1.0, "proj_dim": 128, "proj_hidden": 256, "two_views": False}

    def build(self):
        c = self.config
        self.corruptor = Corruptor(c["corruption_rate"], c["replacement"], c["corruption_mode"])
        self.projector = mlp_head(self.encoder.out_dim, c["proj_hidden"], c["proj_dim"])

    def loss(self, x):
        view2, _ = self.corruptor(x)
        view1 = self.corruptor(x)[0] if self.config["two_views"] else x
        z1 = self.projector(self.encoder(view1))
        z2 = self.projector(self.encoder(view2))
        loss = nt_xent(z1, z2, self.config["temperature"])
        return loss, {"nt_xent": loss.detach()}
