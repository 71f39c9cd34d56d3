"""Registry of self-supervised methods: a new method is one file plus its ``@register`` line."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

METHODS: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(METHODS)


def get_method(name: str):
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}'; available: {', '.join(available())}") from None


def check_method_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's complete, validated options (defaults filled in); a ConfigError names any
    unknown option or bad value. The one check shared by the CLI, YAML configs and Python."""
    cls = get_method(name)
    params = dict(params or {})
    unknown = set(params) - set(cls.defaults)
    if unknown:
        raise ConfigError(f"unknown option(s) for method '{name}': {', '.join(sorted(unknown))}; "
                          f"accepted: {', '.join(sorted(cls.defaults))}")
    return {**cls.defaults, **params}


def build_method(name: str, n_genes: int, **config: Any):
    return get_method(name)(n_genes, **check_method_params(name, config))


from . import barlow, byol, mae, scarf, vime  # noqa: E402,F401  (registration)
from .base import SSLMethod  # noqa: E402

__all__ = ["METHODS", "SSLMethod", "available", "build_method", "check_method_params", "get_method", "register"]
