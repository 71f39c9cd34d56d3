"""Registry of self-supervised methods: a new method is one file plus its ``@register`` line.

Each method declares its options as a dataclass in its own file (``SCARFOptions`` in
``scarf.py``, ...); ``check_method_params`` validates any options against it, the one check
shared by the CLI, YAML configs and Python.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import ConfigError
from ..options import describe, options_class, options_dict, validate_options
from ..utils import available_memory

METHODS: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        cls.name = name
        METHODS[name] = cls
        options_class(name)(cls.Options)
        return cls

    return deco


def available() -> list[str]:
    return sorted(METHODS)


def get_method(name: str):
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(available())}") from None


def method_options(name: str) -> type:
    """The method's options dataclass (fields, defaults, help and allowed values)."""
    return get_method(name).Options


def check_method_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's complete, validated options as a JSON-able dict (defaults filled in, old
    option names mapped to the current ones); a one-line ConfigError names an unknown option
    (listing the accepted ones), a wrong type or an out-of-range value."""
    return options_dict(validate_options(method_options(name), params, name))


def describe_options(name: str) -> list[dict[str, Any]]:
    """One dict per option of the method: ``name``, ``type``, ``default``, ``help`` and
    ``allowed`` (the range or the choices), in declaration order (encoder options first)."""
    return describe(method_options(name))


def build_method(name: str, n_genes: int, **params: Any):
    """The method ``name`` for ``n_genes`` input features, its options validated first."""
    return get_method(name)(n_genes, **check_method_params(name, params))


# copies of the weights a fit holds: weights, gradients, two Adam moments, the best state kept
# for early stopping, and a target network (BYOL) or optimizer scratch space
_FIT_COPIES = 6


def check_model_memory(
    method: str, n_features: int, params: dict, source: str = "model too large"
) -> int:
    """Refuse, before any weight is allocated, a model whose fit would not fit in memory
    (``hidden_dims=[100000000]`` asks for hundreds of GB). The parameters are counted on
    PyTorch's meta device, which allocates nothing. Returns the parameter count."""
    import torch

    with torch.device("meta"):
        n_params = sum(p.numel() for p in build_method(method, n_features, **params).parameters())
    need = n_params * 4 * _FIT_COPIES
    available = available_memory()
    if available is not None and need > available:
        raise ConfigError(
            f"{source}: a {method} model of {n_params:,} weights for {n_features:,} genes needs "
            f"about {need / 1e9:.1f} GB to train, more than the {available / 1e9:.1f} GB "
            "available; choose smaller hidden_dims / embedding_dim, or fewer genes (--top-genes)"
        )
    return n_params


def _register_all() -> None:
    """Import every method module of this package: its ``@register`` line is all it takes."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "options"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_all()
from .base import EncoderOptions, SSLMethod  # noqa: E402

__all__ = [
    "METHODS",
    "EncoderOptions",
    "SSLMethod",
    "available",
    "build_method",
    "check_method_params",
    "check_model_memory",
    "describe_options",
    "get_method",
    "method_options",
    "register",
]
