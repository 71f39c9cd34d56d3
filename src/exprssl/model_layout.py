"""The files of a saved model directory, in one place (as ``evaluation.schema.Layout`` is for a
benchmark directory): their names, the format version, which of them make a directory an exprssl
model, and ``MODEL_FILES``, everything exprssl writes there (anything else is the user's).

Format 2 (exprssl 0.4) stores the weights as ``weights.safetensors``, the Hugging Face Hub
convention: loading them runs no code. Format 1 (0.2, 0.3) stored a ``weights.pt`` (a torch
pickle, read with ``weights_only=True``); such a directory still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

FORMAT_VERSION = 2  # 1: weights.pt (0.2, 0.3); 2: weights.safetensors


@dataclass(frozen=True)
class ModelLayout:
    """Paths of a model directory."""

    directory: Path

    CONFIG: ClassVar[str] = "config.json"
    PREPROCESSOR: ClassVar[str] = "preprocessor.json"
    GENES: ClassVar[str] = "genes.txt"
    WEIGHTS: ClassVar[str] = "weights.safetensors"
    LEGACY_WEIGHTS: ClassVar[str] = "weights.pt"  # format 1
    HISTORY: ClassVar[str] = "history.csv"
    FEATURES_IN: ClassVar[str] = "features_in.txt"  # the input's feature names, when it had them
    CARD: ClassVar[str] = "README.md"  # the model card (Hugging Face layout)
    LOSS_PLOT: ClassVar[str] = "loss.png"  # the pretraining loss curve

    def __post_init__(self):
        object.__setattr__(self, "directory", Path(self.directory))

    def __truediv__(self, name: str) -> Path:
        return self.directory / name

    @property
    def config(self) -> Path:
        return self / self.CONFIG

    @property
    def preprocessor(self) -> Path:
        return self / self.PREPROCESSOR

    @property
    def genes(self) -> Path:
        return self / self.GENES

    @property
    def history(self) -> Path:
        return self / self.HISTORY

    @property
    def features_in(self) -> Path:
        return self / self.FEATURES_IN

    @property
    def card(self) -> Path:
        return self / self.CARD

    @property
    def loss_plot(self) -> Path:
        return self / self.LOSS_PLOT

    @property
    def weights(self) -> Path:
        """The weights file there is: safetensors (format 2), else a 0.3 ``weights.pt``; the
        safetensors name when there is neither (where a save writes them)."""
        new = self / self.WEIGHTS
        legacy = self / self.LEGACY_WEIGHTS
        return legacy if legacy.is_file() and not new.is_file() else new

    def missing(self) -> list[str]:
        """The required files that are not there (a weights file of either format counts)."""
        names = [self.CONFIG, self.PREPROCESSOR]
        out = [n for n in names if not (self / n).is_file()]
        if not self.weights.is_file():
            out.append(self.WEIGHTS)
        return out

    def is_model(self) -> bool:
        """A weights file and a config.json naming a method and a format version: what makes a
        directory an exprssl model (the output rules never replace anything else)."""
        if not self.weights.is_file():
            return False
        try:
            cfg = json.loads(self.config.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(cfg, dict) and "format_version" in cfg and "method" in cfg


MODEL_FILES = frozenset(
    {
        ModelLayout.CONFIG,
        ModelLayout.PREPROCESSOR,
        ModelLayout.GENES,
        ModelLayout.WEIGHTS,
        ModelLayout.LEGACY_WEIGHTS,
        ModelLayout.HISTORY,
        ModelLayout.FEATURES_IN,
        ModelLayout.CARD,
        ModelLayout.LOSS_PLOT,
    }
)
