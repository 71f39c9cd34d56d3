"""BYOL (Grill et al. 2020): an online network predicts an EMA target network, no negatives."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..augment import Corruptor, gaussian_noise
from ..encoders import mlp_head
from ..losses import LossOutput, byol_loss
from ..options import option
from . import register
from .base import (
    EncoderOptions,
    SSLMethod,
    corruption_mode_option,
    corruption_rate_option,
    replacement_option,
)


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online, for parameters and BatchNorm statistics."""
    for po, pt in zip(online.parameters(), target.parameters(), strict=True):
        pt.lerp_(po, 1.0 - tau)
    for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
        if bt.dtype.is_floating_point:
            bt.lerp_(bo, 1.0 - tau)
        else:
            bt.copy_(bo)


def cosine_tau(base: float, step: int, total_steps: int) -> float:
    """BYOL's schedule: tau rises from ``base`` at step 0 to 1 at the last step."""
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * frac) + 1) / 2


@dataclass(frozen=True)
class BYOLOptions(EncoderOptions):
    """BYOL's options: tau 0.99 -> 1 on a cosine schedule (Grill et al.); ``ema_schedule="fixed"``
    with ``tau=0.9`` is the set-up of Dradjat et al."""

    corruption_rate: float = corruption_rate_option(0.3, "the SCARF-style corruption of each view")
    replacement: str = replacement_option("batch_permute")
    corruption_mode: str = corruption_mode_option("fixed")
    noise_std: float = option(
        0.0, "std of Gaussian noise added to each view after corruption", ge=0
    )
    proj_hidden: int = option(4096, "hidden width of the projector and predictor", ge=1)
    proj_dim: int = option(256, "output size of the projector and predictor", ge=1)
    tau: float = option(
        0.99, "EMA decay of the target network (the schedule's start when cosine)", ge=0, lt=1
    )
    ema_schedule: str = option(
        "cosine",
        "'cosine': tau rises to 1 over training; 'fixed': tau throughout",
        choices=("cosine", "fixed"),
    )


@register("byol")
class BYOL(SSLMethod):
    """Two corrupted views; symmetric 2 - 2cos loss between online predictions and target
    projections.

    The loss reports the current EMA decay as the metric ``tau``.
    """

    Options = BYOLOptions

    def build(self):
        o = self.options
        self.corruptor = Corruptor(o.corruption_rate, o.replacement, o.corruption_mode)
        self.projector = mlp_head(self.encoder.out_dim, o.proj_hidden, o.proj_dim)
        self.predictor = mlp_head(o.proj_dim, o.proj_hidden, o.proj_dim)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in (*self.target_encoder.parameters(), *self.target_projector.parameters()):
            p.requires_grad_(False)
        self.current_tau = o.tau

    def _view(self, x):
        v, _ = self.corruptor(x)
        return gaussian_noise(v, self.options.noise_std)

    def loss(self, x):
        v1, v2 = self._view(x), self._view(x)
        p1 = self.predictor(self.projector(self.encoder(v1)))
        p2 = self.predictor(self.projector(self.encoder(v2)))
        with torch.no_grad():
            self.target_encoder.train(self.training)
            self.target_projector.train(self.training)
            t1 = self.target_projector(self.target_encoder(v1))
            t2 = self.target_projector(self.target_encoder(v2))
        return LossOutput(byol_loss(p1, t2) + byol_loss(p2, t1), metrics={"tau": self.current_tau})

    def on_train_batch_end(self, step, total_steps):
        o = self.options
        self.current_tau = (
            cosine_tau(o.tau, step, total_steps) if o.ema_schedule == "cosine" else o.tau
        )
        ema_update(self.encoder, self.target_encoder, self.current_tau)
        ema_update(self.projector, self.target_projector, self.current_tau)
