"""Pooling sources of different platforms: each ``--pretrain-data`` source is scaled on its own
before it joins a split's pretraining pool, onto the scale of the cohort's own pool (fit on the
split's non-test profiles only), so one z-score is never fit on a mix of microarray log2 values
and RNA-seq counts (the mix left SSL fine-tuning predicting a single class).

- ``standardize`` (default): each source to log scale when it is counts or linear (its own
  CPM / log2 decisions), then z-scored per gene by its own statistics and put on the cohort
  pool's per-gene mean and standard deviation. The cohort goes through the same steps, which
  for itself leave its (log-scale) values as they are.
- ``quantile``: every profile (source or cohort) quantile-normalised to the reference
  distribution of the cohort pool's profiles.
- ``none``: sources pooled as read.
"""

from __future__ import annotations

import numpy as np

from ..preprocessing import Preprocessor

DESCRIPTIONS = {
    "standardize": "each pretraining source was z-scored per gene on its own (after its own "
    "log2/CPM step where it held counts or linear values) and put on the per-gene mean and "
    "standard deviation of the cohort's own pool, fit on each split's non-test profiles; the "
    "cohort took the same steps",
    "quantile": "every profile of each pretraining source and of the cohort was quantile-"
    "normalised to the reference distribution of the cohort's own pool (each split's non-test "
    "profiles)",
    "none": "the pretraining sources were pooled as read (pool_scaling: none), on one z-score "
    "fit on the mixed pool",
}


def _log_scale(X: np.ndarray, genes: list[str]) -> Preprocessor:
    """A source's own CPM / log2 steps (decided from its values), nothing else."""
    return Preprocessor(standardize=False, clip=None, min_coverage=0).fit(X, genes=genes)


class PoolScaler:
    """Puts pretraining sources on the scale of a reference (the cohort's pool of one split)."""

    def __init__(self, how: str):
        self.how = how

    def fit(self, reference: np.ndarray, genes: list[str]) -> PoolScaler:
        self.genes = list(genes)
        self.ref_ = Preprocessor(
            standardize=False, clip=None, min_coverage=0, quantile=self.how == "quantile"
        ).fit(reference, genes=self.genes)
        R = self.ref_.transform(reference, self.genes)
        self.mean_ = R.mean(0)
        sd = R.std(0)
        sd[sd < 1e-8] = 1.0
        self.sd_ = sd
        return self

    def cohort(self, X: np.ndarray) -> np.ndarray:
        """The cohort's profiles (every one, the test profiles too) by the reference's steps."""
        return self.ref_.transform(X, self.genes)

    def source(self, X: np.ndarray) -> np.ndarray:
        """A pretraining source on the reference's scale, by its own statistics."""
        Xs = _log_scale(X, self.genes).transform(X, self.genes)
        if self.how == "quantile":
            return self.ref_._quantile(Xs)
        sd = Xs.std(0)
        sd[sd < 1e-8] = 1.0
        return ((Xs - Xs.mean(0)) / sd * self.sd_ + self.mean_).astype(np.float32)


def scale_pool(
    how: str,
    cohort_X: np.ndarray,
    pool_rows: np.ndarray,
    sources: list[np.ndarray],
    genes: list[str],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(cohort, sources) on one scale; unchanged when there is no source or ``how`` is none."""
    if not sources or how == "none":
        return cohort_X, sources
    scaler = PoolScaler(how).fit(cohort_X[pool_rows], genes)
    return scaler.cohort(cohort_X), [scaler.source(x) for x in sources]
