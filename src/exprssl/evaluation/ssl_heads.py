"""Registry of the SSL heads, beside the baselines' (``baselines/``): what an SSL method's encoder
is scored with, each approach named ``method+head`` (``schema.approach_name``). The benchmark
runs every method with every head here, in this order; each head says how its approach is
attributed to genes (``explainers.Explainer``), so the attribution stage needs no name switch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .explainers import INTEGRATED_GRADIENTS, AttributionTask, Explainer
from .keys import FeatureKey


class SSLHead(Explainer):
    """The interface every registered SSL head implements."""

    name: ClassVar[str] = ""


SSL_HEADS: dict[str, SSLHead] = {}


def register_head(name: str):
    """Class decorator: register an ``SSLHead`` subclass under ``name`` (the run's order)."""

    def deco(cls: type[SSLHead]) -> type[SSLHead]:
        cls.check_capability(f"SSL head {name}")
        cls.name = name
        SSL_HEADS[name] = cls()
        return cls

    return deco


def _encoder(task: AttributionTask, method: str):
    from ..model import SSLModel

    return SSLModel.load(task.models[method]).method_.encoder


@register_head("linear_probe")
class LinearProbe(SSLHead):
    """A logistic probe on the frozen encoder's embeddings: integrated gradients run through
    encoder + probe."""

    attribution = INTEGRATED_GRADIENTS

    def explain(self, task: AttributionTask, method: str, params: dict[str, Any]) -> np.ndarray:
        from .explainers import integrated_gradients, logistic_weights, probe_network
        from .learners import fit_logistic

        given = task.is_given(method)  # a given model: one set of embeddings, no pretrain seed
        Z_lab = task.labelled(FeatureKey.embedding(method, None if given else 0))
        probe = fit_logistic(Z_lab, task.y_lab, params, task.seed)
        net = probe_network(_encoder(task, method), *logistic_weights(probe, task.n_classes))
        X_rows = task.explained(task.genes_key(method))
        return integrated_gradients(net, X_rows, task.n_classes, task.y_rows)


@register_head("finetune")
class FineTune(SSLHead):
    """The pretrained encoder + a softmax head, fine-tuned: integrated gradients through both."""

    attribution = INTEGRATED_GRADIENTS

    def explain(self, task: AttributionTask, method: str, params: dict[str, Any]) -> np.ndarray:
        import torch

        from .explainers import trained_network_attributions
        from .learners import train_torch

        torch.manual_seed(task.seed)
        encoder = _encoder(task, method)
        X_lab = task.labelled(task.genes_key(method))
        net = train_torch(X_lab, task.y_lab, encoder, params, task)
        return trained_network_attributions(task, method, net)


__all__ = ["SSL_HEADS", "SSLHead", "register_head"]
