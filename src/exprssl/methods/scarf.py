"""SCARF (Bahri et al. 2022): contrastive learning with random feature corruption."""

from __future__ import annotations

from dataclasses import dataclass

from ..augment import Corruptor
from ..encoders import mlp_head
from ..losses import LossOutput, nt_xent
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
class SCARFOptions(EncoderOptions):
    """SCARF's options; defaults are the paper's (c = 0.3, temperature 1.0)."""

    corruption_rate: float = corruption_rate_option(0.3, "SCARF's c")
    replacement: str = replacement_option("marginal")
    corruption_mode: str = corruption_mode_option("fixed")
    temperature: float = option(1.0, "NT-Xent softmax temperature (tau)", gt=0)
    proj_hidden: int = option(256, "hidden width of the projection head", ge=1)
    proj_dim: int = option(
        128, "output size of the projection head (where NT-Xent is computed)", ge=1
    )
    two_views: bool = option(
        False, "corrupt both views (SimCLR style) instead of a clean anchor and one corrupted view"
    )


@register("scarf")
class SCARF(SSLMethod):
    """A clean anchor and a view with 30% of genes replaced from their marginals, pulled together
    under NT-Xent against the other 2N-2 views of the batch (temperature 1.0, as in the paper)."""

    Options = SCARFOptions

    def build(self):
        o = self.options
        self.corruptor = Corruptor(o.corruption_rate, o.replacement, o.corruption_mode)
        self.projector = mlp_head(self.encoder.out_dim, o.proj_hidden, o.proj_dim)

    def loss(self, x):
        view2, _ = self.corruptor(x)
        view1 = self.corruptor(x)[0] if self.options.two_views else x
        z1 = self.projector(self.encoder(view1))
        z2 = self.projector(self.encoder(view2))
        loss = nt_xent(z1, z2, self.options.temperature)
        return LossOutput(loss, {"nt_xent": loss})
