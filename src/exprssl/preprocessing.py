"""Preprocessing fit on training samples only, applied unchanged to any new data, saved as JSON.

It travels inside every saved model, so data from another source is aligned to the fitted genes
by name and transformed exactly as the encoder's training data was.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

from .errors import ConfigError, GeneOverlapError, InvalidValuesError, NegativeCountsError
from .scale import guess_scale
from .utils import atomic_write_text

FORMAT_VERSION = 1
_OPTIONS = ("library_size", "log", "min_mean", "top_k_variance", "quantile", "standardize", "clip",
            "min_coverage")


def _as_matrix(data, genes=None) -> tuple[np.ndarray, list[str], str]:
    """(X float32, gene names, source) from an AnnData or an (array, genes) pair."""
    if hasattr(data, "var_names") and hasattr(data, "X"):
        X = data.X
        if hasattr(X, "toarray"):
            X = X.toarray()
        source = str(getattr(data, "uns", {}).get("exprssl", {}).get("source", "data"))
        return np.asarray(X, dtype=np.float32), [str(g) for g in data.var_names], source
    X = np.asarray(data, dtype=np.float32)
    if X.ndim != 2:
        raise ConfigError(f"expected a 2-D samples x genes matrix, got shape {X.shape}")
    if genes is None:
        genes = [str(i) for i in range(X.shape[1])]
    if len(genes) != X.shape[1]:
        raise ConfigError(f"{len(genes)} gene names for a matrix with {X.shape[1]} columns")
    return X, [str(g) for g in genes], "data"


def _column_moments(X: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) variance with float64 accumulators, a row block at a
    time, so a large float32 matrix is never copied whole to float64."""
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    for s in range(0, n, block):
        total += X[s:s + block].sum(0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(X.shape[1])
    for s in range(0, n, block):
        sq += np.square(X[s:s + block] - mean).sum(0, dtype=np.float64)
    return mean, sq / n


class Preprocessor:
    """CPM -> log2(x+1) -> gene filter -> quantile normalisation -> z-score with clipping.

    Each step can be switched off; ``"auto"`` decides from the training data's value scale
    (``exprssl.scale.guess_scale``): CPM only for raw counts, log only for linear-scale values.
    Fitted attributes end in ``_``; ``transform`` never changes them.
    """

    def __init__(self, library_size: bool | str = "auto", log: bool | str = "auto",
                 min_mean: float | None = None, top_k_variance: int | None = None,
                 quantile: bool = False, standardize: bool = True, clip: float | None = 10.0,
                 min_coverage: float = 0.5):
        for name, v in (("library_size", library_size), ("log", log)):
            if v not in (True, False, "auto"):
                raise ConfigError(f"preprocessing option {name} must be true, false or 'auto', got {v!r}")
        if top_k_variance is not None and int(top_k_variance) < 1:
            raise ConfigError(f"top_k_variance must be >= 1, got {top_k_variance}")
        if not 0 <= min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in [0, 1], got {min_coverage}")
        self.library_size, self.log = library_size, log
        self.min_mean = None if min_mean is None else float(min_mean)
        self.top_k_variance = None if top_k_variance is None else int(top_k_variance)
        self.quantile, self.standardize = bool(quantile), bool(standardize)
        self.clip = None if clip is None else float(clip)
        self.min_coverage = float(min_coverage)

    # ----------------------------------------------------------------- helpers
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "genes_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ConfigError("Preprocessor is not fitted: call fit() on training samples first")

    def _scale_counts(self, X: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """CPM and log steps; ``X`` holds the sample's genes (its own library size), of which
        only ``columns`` are kept (after the library size, which needs them all). Float32 and in
        place after the first copy: streaming preprocesses every batch, so temporaries count.
        Returns ``X`` itself when no step and no selection applies (never modified in place)."""
        factor = None
        if self.library_size_:
            totals = X.sum(1, keepdims=True, dtype=np.float64)
            totals[totals == 0] = 1.0
            factor = (1e6 / totals).astype(np.float32)
        out = X
        if columns is not None:
            out = X[:, columns]  # a copy
        if factor is not None:
            out = np.multiply(out, factor, out=out if out is not X else None)
        if self.log_:
            out = np.add(out, 1.0, out=out if out is not X else None, dtype=np.float32)
            np.log2(out, out=out)
        return out

    # ------------------------------------------------------------------- fit
    def fit(self, data, genes=None) -> Preprocessor:
        X, names, source = _as_matrix(data, genes)
        if X.shape[0] < 2:
            raise ConfigError(f"{source}: need at least 2 samples to fit preprocessing, got {X.shape[0]}")
        if not np.isfinite(X).all():
            raise InvalidValuesError(f"{source}: {int((~np.isfinite(X)).sum())} NaN/inf values; "
                                     "cannot fit preprocessing")
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: duplicate gene names; collapse them first (exprssl.read does)")
        scale = guess_scale(X)
        lib = scale == "counts" if self.library_size == "auto" else bool(self.library_size)
        do_log = scale in ("counts", "linear") if self.log == "auto" else bool(self.log)
        if do_log and scale == "standardized":
            raise NegativeCountsError(f"{source}: negative values, so log2(x+1) is impossible; "
                                      "the data look already standardised (use log=False)")
        if lib and X.min() < 0:
            raise NegativeCountsError(f"{source}: negative values where counts are expected for CPM")
        if do_log and self.log is True and scale == "log":
            warnings.warn(f"{source}: values already look log-scale (max {X.max():.3g}); "
                          "applying log2(x+1) again", stacklevel=2)
        self.input_scale_, self.library_size_, self.log_ = scale, lib, do_log
        self.input_genes_ = names
        Xs = self._scale_counts(X)

        mean, var = _column_moments(Xs)
        keep = np.ones(Xs.shape[1], dtype=bool)
        if self.min_mean is not None:
            keep &= mean >= self.min_mean
        if self.top_k_variance is not None and keep.sum() > self.top_k_variance:
            var = var.copy()
            var[~keep] = -np.inf
            top = np.argpartition(-var, self.top_k_variance - 1)[: self.top_k_variance]
            keep = np.zeros_like(keep)
            keep[top] = True
        if not keep.any():
            raise ConfigError(f"{source}: gene filtering (min_mean={self.min_mean}) removed every gene")
        self.gene_index_ = np.flatnonzero(keep)
        self.genes_ = [names[i] for i in self.gene_index_]
        self.fill_ = mean[self.gene_index_].astype(np.float32)  # imputes genes absent later
        if self.quantile or self.standardize:
            Xk = Xs[:, self.gene_index_] if len(self.gene_index_) < Xs.shape[1] else Xs
            if self.quantile:
                self.quantile_ref_ = _column_moments(np.sort(Xk, axis=1))[0].astype(np.float32)
                Xk = self._quantile(Xk)
                kmean, kvar = _column_moments(Xk)
            else:
                kmean, kvar = mean[self.gene_index_], var[self.gene_index_]
            if self.standardize:
                self.mean_ = kmean.astype(np.float32)
                std = np.sqrt(kvar)
                std[std < 1e-8] = 1.0
                self.scale_ = std.astype(np.float32)
        return self

    def _quantile(self, X: np.ndarray, block: int = 256) -> np.ndarray:
        """Each sample's values replaced by the reference quantiles of their ranks; tied values
        (the many zeros of count data) share the mean reference over their ranks, as in the
        standard method, instead of getting distinct values in arbitrary (gene-order) order."""
        d = X.shape[1]
        cum_ref = np.concatenate([[0.0], np.cumsum(self.quantile_ref_, dtype=np.float64)])
        positions = np.arange(d)
        out = np.empty(X.shape, dtype=np.float32)
        for r0 in range(0, X.shape[0], block):  # bounded memory: a few int arrays per block
            x = X[r0:r0 + block]
            order = np.argsort(x, axis=1, kind="stable")
            xs = np.take_along_axis(x, order, axis=1)
            starts_run = np.ones(xs.shape, dtype=bool)
            starts_run[:, 1:] = xs[:, 1:] != xs[:, :-1]
            ends_run = np.ones(xs.shape, dtype=bool)
            ends_run[:, :-1] = starts_run[:, 1:]
            first = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=1)
            last = np.minimum.accumulate(np.where(ends_run, positions, d - 1)[:, ::-1], axis=1)[:, ::-1]
            values = (cum_ref[last + 1] - cum_ref[first]) / (last - first + 1)
            np.put_along_axis(out[r0:r0 + block], order, values.astype(np.float32), axis=1)
        return out

    # -------------------------------------------------------------- transform
    def transform(self, data, genes=None) -> np.ndarray:
        """Aligned by gene name to the fitted genes; returns float32 (n_samples, len(genes_))."""
        self._check_fitted()
        X, names, source = _as_matrix(data, genes)
        if not np.isfinite(X.sum(dtype=np.float64)):  # one pass, no mask: NaN and inf propagate
            bad = np.argwhere(~np.isfinite(X))[0]
            raise InvalidValuesError(f"{source}: {int((~np.isfinite(X)).sum())} NaN/inf values "
                                     f"(first at sample {bad[0]}, gene {names[bad[1]]})")
        pos = {g: i for i, g in enumerate(names)}
        if names == self.input_genes_:
            every = len(self.gene_index_) == X.shape[1]  # gene_index_ is sorted: all genes, in order
            Xs = self._scale_counts(X, None if every else self.gene_index_)
        else:
            # library size from the genes the sample has that the model knows (same basis as training)
            shared_in = [pos[g] for g in self.input_genes_ if g in pos]
            col = np.array([pos.get(g, -1) for g in self.genes_])
            present = col >= 0
            coverage = present.mean()
            if coverage < self.min_coverage:
                missing = [g for g, p in zip(self.genes_, present, strict=True) if not p][:5]
                raise GeneOverlapError(
                    f"{source}: only {100 * coverage:.1f}% of the model's {len(self.genes_)} genes found "
                    f"({int(present.sum())}); missing e.g. {', '.join(missing)}; "
                    f"below the minimum {100 * self.min_coverage:.0f}%")
            Xin = X[:, shared_in]
            Xin_scaled = self._scale_counts(Xin)
            local = {names[j]: k for k, j in enumerate(shared_in)}
            Xs = np.empty((X.shape[0], len(self.genes_)), dtype=np.float32)
            Xs[:] = self.fill_
            idx = np.flatnonzero(present)
            Xs[:, idx] = Xin_scaled[:, [local[self.genes_[i]] for i in idx]]
        if self.quantile:
            Xs = self._quantile(Xs)
        if self.standardize:
            Xs = np.subtract(Xs, self.mean_, out=Xs if Xs is not X else None, dtype=np.float32)
            Xs /= self.scale_
            if self.clip is not None:
                np.clip(Xs, -self.clip, self.clip, out=Xs)
        if Xs is X:  # no step applied: still a new array, so that training never aliases user data
            Xs = X.copy()
        return np.ascontiguousarray(Xs, dtype=np.float32)

    def fit_transform(self, data, genes=None) -> np.ndarray:
        return self.fit(data, genes).transform(data, genes)

    # ----------------------------------------------------------- persistence
    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": FORMAT_VERSION, "params": self.get_params()}
        if self.is_fitted:
            d["fitted"] = {
                "input_scale_": self.input_scale_, "library_size_": self.library_size_, "log_": self.log_,
                "input_genes_": self.input_genes_, "gene_index_": self.gene_index_.tolist(),
                "fill_": self.fill_.tolist(),
                **({"quantile_ref_": self.quantile_ref_.tolist()} if self.quantile else {}),
                **({"mean_": self.mean_.tolist(), "scale_": self.scale_.tolist()} if self.standardize else {}),
            }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        if d.get("version") != FORMAT_VERSION:
            raise ConfigError(f"unsupported preprocessor format version {d.get('version')}")
        p = cls(**d["params"])
        f = d.get("fitted")
        if f:
            p.input_scale_, p.library_size_, p.log_ = f["input_scale_"], f["library_size_"], f["log_"]
            p.input_genes_ = list(f["input_genes_"])
            p.gene_index_ = np.asarray(f["gene_index_"], dtype=np.int64)
            p.genes_ = [p.input_genes_[i] for i in p.gene_index_]
            for key in ("fill_", "quantile_ref_", "mean_", "scale_"):
                if key in f:
                    setattr(p, key, np.asarray(f[key], dtype=np.float32))
        return p

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        from .errors import DataFileError

        try:
            return cls.from_dict(json.loads(open(path).read()))
        except FileNotFoundError:
            raise DataFileError(f"{path}: preprocessor file not found") from None
        except (json.JSONDecodeError, KeyError) as e:
            raise DataFileError(f"{path}: not a valid preprocessor file ({e})") from None

    def describe(self) -> list[str]:
        """Human-readable steps, for reports and manifests."""
        self._check_fitted()
        steps = []
        if self.library_size_:
            steps.append("CPM")
        if self.log_:
            steps.append("log2(x+1)")
        if self.min_mean is not None:
            steps.append(f"genes with mean >= {self.min_mean:g}")
        if self.top_k_variance is not None:
            steps.append(f"top {self.top_k_variance} genes by variance")
        if self.quantile:
            steps.append("quantile normalisation")
        if self.standardize:
            steps.append("z-score" + (f", clip ±{self.clip:g}" if self.clip is not None else ""))
        return steps or ["none"]

    def __repr__(self) -> str:
        state = f"fitted on {len(self.input_genes_)} genes -> {len(self.genes_)}" if self.is_fitted else "not fitted"
        return f"Preprocessor({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())}; {state})"
