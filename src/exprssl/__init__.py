"""exprssl: self-supervised representation learning on bulk gene-expression data.

Pretrain an encoder on unlabeled profiles (SCARF, BYOL, VIME, Barlow Twins, masked autoencoder),
embed new data, and measure honestly whether it beats supervised learning on raw genes.
"""

from __future__ import annotations

import os
from importlib import import_module

# OpenMP threads that spin-wait for a busy core make small fits 10-40x slower on a shared machine;
# passive waiting costs nothing idle (exprssl.threads has the measurements). It must be set
# before torch starts its OpenMP runtime, so here, unless the user chose a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Any

__version__ = "0.3.0"

# Heavy modules (torch, lightning) load only when first used, so `import exprssl` and the CLI's
# help stay fast.
_LAZY = {
    "read_file": ("exprssl.io", "read_file"),
    "load_dataset": ("exprssl.io", "load_dataset"),
    "add_labels": ("exprssl.io", "add_labels"),
    "match_genes": ("exprssl.genes", "match_genes"),
    "reindex_genes": ("exprssl.genes", "reindex_genes"),
    "push_to_hub": ("exprssl.hub", "push_to_hub"),
    "Preprocessor": ("exprssl.preprocessing", "Preprocessor"),
    "SSLModel": ("exprssl.model", "SSLModel"),
    "benchmark": ("exprssl.api", "benchmark"),
    "datasets": ("exprssl.datasets", None),
    "methods": ("exprssl.methods", None),
    "errors": ("exprssl.errors", None),
    "readers": ("exprssl.readers", None),
}
# 0.3 names, deprecated (each call warns; removed in 0.5): not listed in __all__ or dir()
_DEPRECATED = {
    "read": ("exprssl.io", "read"),
    "load_data": ("exprssl.io", "load_data"),
    "align_genes": ("exprssl.genes", "align_genes"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _DEPRECATED:
        module, attr = _LAZY.get(name) or _DEPRECATED[name]
        mod = import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'exprssl' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
