"""BYOL (Grill et al. 2020): an online network predicts an EMA target network, no negatives."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..augment import Corruptor, gaussian_noise
from ..encoders import mlp_head
from ..errors import ConfigError
from ..losses import byol_loss
from . import register
from .base import SSLMethod


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


@register("byol")
class BYOL(SSLMethod):
    """Two corrupted views; symmetric 2 - 2cos loss between online predictions and target projections.

    ``ema_schedule="cosine"`` (default, tau 0.99 -> 1) or ``"fixed"`` (the paper's tau = 0.9).
    """

    defaults = {"corruption_rate": 0.3, "replacement": "batch_permute", "corruption_mode": "fixed",
                "noise_std": 0.0, "proj_hidden": 4096, "proj_dim": 256, "tau": 0.99,
                "ema_schedule": "cosine"}

    def build(self):
        c = self.config
        if c["ema_schedule"] not in ("cosine", "fixed"):
            raise ConfigError(f"byol: ema_schedule must be 'cosine' or 'fixed', got '{c['ema_schedule']}'")
        self.corruptor = Corruptor(c["corruption_rate"], c["replacement"], c["corruption_mode"])
        self.projector = mlp_head(self.encoder.out_dim, c["proj_hidden"], c["proj_dim"])
        self.predictor = mlp_head(c["proj_dim"], c["proj_hidden"], c["proj_dim"])
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in (*self.target_encoder.parameters(), *self.target_projector.parameters()):
            p.requires_grad_(False)
        self.current_tau = float(c["tau"])

    def _view(self, x):
        v, _ = self.corruptor(x)
        return gaussian_noise(v, self.config["noise_std"])

    def loss(self, x):
        v1, v2 = self._view(x), self._view(x)
        p1 = self.predictor(self.projector(self.encoder(v1)))
        p2 = self.predictor(self.projector(self.encoder(v2)))
        with torch.no_grad():
            self.target_encoder.train(self.training)
            self.target_projector.train(self.training)
            t1 = self.target_projector(self.target_encoder(v1))
            t2 = self.target_projector(self.target_encoder(v2))
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)
        return loss, {"tau": self.current_tau}

    def on_train_batch_end(self, step, total_steps):
        if self.config["ema_schedule"] == "cosine":
            self.current_tau = cosine_tau(self.config["tau"], step, total_steps)
        else:
            self.current_tau = float(self.config["tau"])
        ema_update(self.encoder, self.target_encoder, self.current_tau)
        ema_update(self.projector, self.target_projector, self.current_tau)
