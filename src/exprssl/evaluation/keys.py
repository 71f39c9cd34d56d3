"""Feature keys: which derived features (one ``.npy`` per key and split) a cell reads. Their own
module, below the schema, so that the baseline registry can name its features without importing
the schema of the files (which reads the benchmark's options, which read the registry)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureKey:
    """Which derived features a cell reads (see the module docstring)."""

    family: str  # "X", "pool", "pool_raw", "pca", "random" or "Z"
    method: str | None = None  # Z; X of a given model
    seed: int | None = None  # random: the label seed; Z: the pretrain seed (None: the cell's)

    def __str__(self) -> str:
        parts = [self.family, self.method, None if self.seed is None else str(self.seed)]
        return ":".join(p for p in parts if p is not None)

    @classmethod
    def genes(cls, model: str | None = None) -> FeatureKey:
        """The preprocessed genes (``model``: a given model's own preprocessing of them)."""
        return cls("X", model)

    @classmethod
    def embedding(cls, method: str, pretrain_seed: int | None = None) -> FeatureKey:
        return cls("Z", method, pretrain_seed)

    @classmethod
    def random(cls, seed: int) -> FeatureKey:
        return cls("random", None, seed)


GENES = FeatureKey("X")
POOL = FeatureKey("pool")
POOL_RAW = FeatureKey("pool_raw")
PCA_SCORES = FeatureKey("pca")
Features = dict[FeatureKey, str]  # a split's derived features: key -> .npy path
