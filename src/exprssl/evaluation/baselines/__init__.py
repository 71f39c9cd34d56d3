"""Registry of supervised baselines and controls: a new baseline is one file in this package
with its ``@register`` line (as SSL methods are in ``exprssl.methods``).

A baseline is scored on the same labelled subsets, inner folds and test samples as the SSL
heads (``cells.evaluate_group``). Its file declares:

- ``name`` (by ``@register("name")``), ``kind``: ``"baseline"`` (a verdict's "best baseline"
  is the best of these) or ``"control"`` (shown, never the comparison);
- ``features``: which features it reads, a family of ``schema.FeatureKey`` (``"X"`` the
  preprocessed genes, ``"pca"`` PCA scores fit on the pool, ``"random"`` the random-encoder
  control's features, one per seed); the runner writes only the families some baseline reads;
- ``grid`` (hyperparameters, default first) and ``max_folds`` (inner-CV folds at most);
- ``fit_predict(F_lab, y_lab, F_test, folds, job)``: class probabilities of the test rows
  over every class of the task, and the chosen hyperparameters;
- ``order``: its place in the default list, the run and the report;
- ``attribution`` and ``explain(task, method, params)``: how its approach is attributed to genes
  (``explainers.Explainer``), or ``why_not`` when it is not attributable (the report says why).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar

from ...errors import ConfigError
from ..explainers import Explainer
from ..keys import FeatureKey

KINDS = ("baseline", "control")
FEATURE_FAMILIES = ("X", "pca", "random")


class Baseline(Explainer):
    """The interface every registered baseline implements (see the module docstring)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "baseline"
    features: ClassVar[str] = "X"
    grid: ClassVar[list[dict[str, Any]]] = [{}]
    max_folds: ClassVar[int] = 3
    order: ClassVar[int] = 100
    default: ClassVar[bool] = True  # among the baselines a benchmark runs unless told otherwise

    def feature_key(self, seed: int) -> FeatureKey:
        """The key of the features this baseline reads in a cell of label seed ``seed``."""
        return FeatureKey(self.features, seed=seed if self.features == "random" else None)

    def fit_predict(self, F_lab, y_lab, F_test, folds, job) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError


BASELINES: dict[str, Baseline] = {}


def register(name: str):
    """Class decorator: register a ``Baseline`` subclass under ``name``."""

    def deco(cls: type[Baseline]) -> type[Baseline]:
        if cls.kind not in KINDS or cls.features not in FEATURE_FAMILIES:
            raise TypeError(
                f"baseline {name}: kind must be one of {KINDS} and features one of "
                f"{FEATURE_FAMILIES}"
            )
        cls.check_capability(f"baseline {name}")
        cls.name = name
        BASELINES[name] = cls()
        ordered = sorted(BASELINES.items(), key=lambda kv: (kv[1].order, kv[0]))
        BASELINES.clear()
        BASELINES.update(ordered)
        return cls

    return deco


def available() -> list[str]:
    """Every registered baseline and control, in their declared order."""
    return list(BASELINES)


def default_baselines() -> list[str]:
    """The baselines and controls a benchmark runs unless told otherwise."""
    return [name for name, b in BASELINES.items() if b.default]


def all_grids() -> dict[str, list[dict[str, Any]]]:
    """The shared learner grids (``tuning.GRIDS``) and every baseline's own grid (one that is
    not a shared one), for the manifest and the report."""
    from ..tuning import GRIDS

    own = {
        name: b.grid
        for name, b in BASELINES.items()
        if not any(b.grid is g for g in GRIDS.values())
    }
    return {**GRIDS, **own}


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown baseline '{name}'; available: {', '.join(available())}"
        ) from None


def _register_all() -> None:
    """Import every module of this package: its ``@register`` line is all it takes."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()

__all__ = [
    "BASELINES",
    "Baseline",
    "all_grids",
    "available",
    "default_baselines",
    "get_baseline",
    "register",
]
