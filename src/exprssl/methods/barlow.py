"""Barlow Twins (Zbontar et al. 2021): decorrelate embedding dimensions across two views."""

from __future__ import annotations

from dataclasses import dataclass

from ..augment import Corruptor, gaussian_noise
from ..encoders import mlp_head
from ..losses import barlow_twins_loss
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
class BarlowOptions(EncoderOptions):
    """Barlow Twins' options: lambda = 5e-3 as in Zbontar et al.; the projector is 1024 wide
    (theirs is 8192, for ImageNet)."""

    corruption_rate: float = corruption_rate_option(0.3, "the SCARF-style corruption of each view")
    replacement: str = replacement_option("marginal")
    corruption_mode: str = corruption_mode_option("fixed")
    noise_std: float = option(
        0.0, "std of Gaussian noise added to each view after corruption", ge=0
    )
    proj_hidden: int = option(1024, "hidden width of the projection head", ge=1)
    proj_dim: int = option(
        1024, "output size of the projection head (size of the cross-correlation)", ge=1
    )
    lambd: float = option(
        5e-3, "weight of the off-diagonal (redundancy reduction) term (the paper's lambda)", gt=0
    )


@register("barlow")
class BarlowTwins(SSLMethod):
    """Loss parts: ``on_diag`` and ``off_diag``; total = on_diag + lambd * off_diag."""

    Options = BarlowOptions

    def build(self):
        o = self.options
        self.corruptor = Corruptor(o.corruption_rate, o.replacement, o.corruption_mode)
        self.projector = mlp_head(self.encoder.out_dim, o.proj_hidden, o.proj_dim)

    def loss(self, x):
        views = [gaussian_noise(self.corruptor(x)[0], self.options.noise_std) for _ in range(2)]
        z1, z2 = (self.projector(self.encoder(v)) for v in views)
        return barlow_twins_loss(z1, z2, self.options.lambd)
