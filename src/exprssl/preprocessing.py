"""Preprocessing fit on training samples only, applied unchanged to any new data, saved as JSON.

It travels inside every saved model, so data from another source is aligned to the fitted genes
by name and transformed exactly as the encoder's training data was.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import (
    ConfigError,
    DataFileError,
    DuplicateGenesError,
    GeneOverlapError,
    InvalidValuesError,
    NegativeCountsError,
    NonNumericError,
)
from .scale import guess_scale
from .utils import atomic_write_text

FORMAT_VERSION = 2
_OPTIONS = ("library_size", "log", "min_mean", "top_k_variance", "quantile", "standardize", "clip",
            "min_coverage")
_FITTED_ARRAYS = ("fill_", "quantile_ref_", "mean_", "scale_")
_ROW_BLOCK = 1024  # rows per block in blocked passes: bounds temporaries on 1e5+-sample matrices


class _Matrix:
    """A samples x genes float32 matrix with the names used in error messages."""

    def __init__(self, data, genes=None):
        samples = None
        if hasattr(data, "var_names") and hasattr(data, "X"):  # AnnData, without importing it
            if genes is not None:
                raise ConfigError("pass genes only with a bare matrix; an AnnData's genes are its var_names")
            X, genes, samples = data.X, list(data.var_names), list(data.obs_names)
            self.source = str((getattr(data, "uns", None) or {}).get("exprssl", {}).get("source", "data"))
            if X is None:
                raise ConfigError(f"{self.source}: AnnData has no X matrix")
        else:
            X, self.source = data, "data"
            if genes is None and hasattr(data, "columns"):  # a pandas DataFrame
                genes, samples = list(data.columns), list(data.index)
        if hasattr(X, "toarray"):  # scipy sparse
            X = X.toarray()
        try:
            self.X = np.asarray(X, dtype=np.float32)  # no copy when already float32
        except (TypeError, ValueError) as e:
            raise NonNumericError(f"{self.source}: expression values are not all numbers ({e})") from None
        if self.X.ndim != 2:
            raise ConfigError(f"{self.source}: expected a 2-D samples x genes matrix, got shape {self.X.shape}")
        if genes is None:
            genes = range(self.X.shape[1])
        self.genes = [str(g) for g in genes]
        if len(self.genes) != self.X.shape[1]:
            raise ConfigError(f"{self.source}: {len(self.genes)} gene names for a matrix with "
                              f"{self.X.shape[1]} columns")
        self.samples = samples

    def where(self, row: int, col: int) -> str:
        sample = f"'{self.samples[row]}'" if self.samples is not None else f"row {row}"
        return f"sample {sample}, gene '{self.genes[col]}'"

    def check_finite(self) -> None:
        # one fast reduction; the elementwise mask is only built to name the culprit
        if np.isfinite(self.X.sum()):
            return
        bad = ~np.isfinite(self.X)
        if bad.any():  # (a float32 sum can overflow on finite data)
            row, col = np.argwhere(bad)[0]
            raise InvalidValuesError(f"{self.source}: {int(bad.sum())} NaN/infinite values "
                                     f"(first at {self.where(row, col)}); remove or impute them first")

    def check_nonnegative(self, step: str, hint: str = "") -> None:
        flat = int(self.X.argmin())
        row, col = divmod(flat, self.X.shape[1])
        if self.X.size and self.X[row, col] < 0:
            raise NegativeCountsError(f"{self.source}: negative value {self.X[row, col]:.4g} at "
                                      f"{self.where(row, col)}, so {step} is impossible{hint}")


def _column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population variance in float64, a row block at a time, so a large
    float32 matrix is never copied whole to float64 (and two passes avoid E[x²]-E[x]² cancellation)."""
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    for s in range(0, n, _ROW_BLOCK):
        total += X[s:s + _ROW_BLOCK].sum(0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(X.shape[1])
    for s in range(0, n, _ROW_BLOCK):
        sq += np.square(X[s:s + _ROW_BLOCK] - mean).sum(0)
    return mean, sq / n


def _quantile_map_inplace(X: np.ndarray, reference: np.ndarray) -> None:
    """Replace each row's values by the reference value at the same rank.

    Tied values (e.g. the many zeros of a count profile) share the mean of the reference over
    their ranks, so the result does not depend on how a sort happens to order ties.
    """
    n, g = X.shape
    cum = np.concatenate([[0.0], np.cumsum(reference, dtype=np.float64)])
    positions = np.arange(g)
    for s in range(0, n, _ROW_BLOCK):
        block = X[s:s + _ROW_BLOCK]
        order = np.argsort(block, axis=1, kind="stable")
        ranked = np.take_along_axis(block, order, axis=1)
        starts_run = np.ones(ranked.shape, dtype=bool)
        starts_run[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        run_start = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=1)
        ends_run = np.ones(ranked.shape, dtype=bool)
        ends_run[:, :-1] = starts_run[:, 1:]
        run_end = np.minimum.accumulate(np.where(ends_run, positions, g - 1)[:, ::-1], axis=1)[:, ::-1] + 1
        values = (cum[run_end] - cum[run_start]) / (run_end - run_start)
        np.put_along_axis(block, order, values.astype(np.float32), axis=1)


class Preprocessor:
    """CPM -> log2(x+1) -> gene filter -> quantile normalisation -> z-score with clipping.

    Each step can be switched off; ``"auto"`` decides from the training data's value scale
    (``exprssl.scale.guess_scale``): CPM only for raw counts, log for counts and other linear
    values (TPM, FPKM), neither for data already on a log scale. Fitted attributes end in ``_``;
    ``transform`` never changes them, so a fitted preprocessor can be shared and saved.

    >>> prep = Preprocessor(top_k_variance=5000).fit(train)   # AnnData or (array, genes)
    >>> Z = prep.transform(other_cohort)                      # aligned to prep.genes_ by name
    """

    def __init__(self, library_size: bool | str = "auto", log: bool | str = "auto",
                 min_mean: float | None = None, top_k_variance: int | None = None,
                 quantile: bool = False, standardize: bool = True, clip: float | None = 10.0,
                 min_coverage: float = 0.5):
        for name, value in (("library_size", library_size), ("log", log)):
            if value not in (True, False, "auto"):
                raise ConfigError(f"preprocessing option {name} must be true, false or 'auto', got {value!r}")
        if top_k_variance is not None and int(top_k_variance) < 1:
            raise ConfigError(f"preprocessing option top_k_variance must be >= 1, got {top_k_variance}")
        if clip is not None and not float(clip) > 0:
            raise ConfigError(f"preprocessing option clip must be positive or null, got {clip}")
        if not 0 <= float(min_coverage) <= 1:
            raise ConfigError(f"preprocessing option min_coverage must be in [0, 1], got {min_coverage}")
        self.library_size, self.log = library_size, log
        self.min_mean = None if min_mean is None else float(min_mean)
        self.top_k_variance = None if top_k_variance is None else int(top_k_variance)
        self.quantile, self.standardize = bool(quantile), bool(standardize)
        self.clip = None if clip is None else float(clip)
        self.min_coverage = float(min_coverage)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "genes_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ConfigError("Preprocessor is not fitted: call fit() on the training samples first")

    def _scale_inplace(self, Z: np.ndarray, library_totals: np.ndarray | None) -> None:
        """CPM and log2(x+1) on a matrix this object owns; the same float32 arithmetic in fit and
        transform, so transform(train) reproduces the values the statistics were fit on."""
        if self.library_size_:
            totals = np.where(library_totals > 0, library_totals, 1.0)
            Z *= (1e6 / totals).astype(np.float32)[:, None]
        if self.log_:
            np.log1p(Z, out=Z)
            Z *= np.float32(1 / np.log(2))

    # ------------------------------------------------------------------- fit
    def fit(self, data, genes=None) -> Preprocessor:
        """Fit on training samples: ``data`` is an AnnData or a samples x genes array with ``genes``."""
        m = _Matrix(data, genes)
        X = m.X
        if X.shape[0] < 2:
            raise ConfigError(f"{m.source}: need at least 2 samples to fit preprocessing, got {X.shape[0]}")
        if X.shape[1] == 0:
            raise ConfigError(f"{m.source}: no genes to fit preprocessing on")
        _check_unique(m.genes, m.source)
        m.check_finite()
        scale = guess_scale(X)
        lib = scale == "counts" if self.library_size == "auto" else bool(self.library_size)
        do_log = scale in ("counts", "linear") if self.log == "auto" else bool(self.log)
        if lib or do_log:
            step = "log2(x+1)" if do_log else "CPM normalisation"
            m.check_nonnegative(step, "; the data look already standardised (use log=False, "
                                "library_size=False)" if scale == "standardized" else "")
        if scale == "log" and self.log is True:
            warnings.warn(f"{m.source}: values already look log-scale (max {X.max():.3g}); "
                          "applying log2(x+1) again as requested (log=True)", stacklevel=2)
        if scale == "log" and self.library_size is True:
            warnings.warn(f"{m.source}: values look log-scale (max {X.max():.3g}); CPM normalisation "
                          "expects raw counts (library_size=True)", stacklevel=2)
        self.input_scale_, self.library_size_, self.log_ = scale, lib, do_log
        self.n_samples_ = int(X.shape[0])
        self.input_genes_ = m.genes

        if lib or do_log:
            Xs = X.copy()
            self._scale_inplace(Xs, X.sum(1, dtype=np.float64) if lib else None)
        else:
            Xs = X  # read only below
        mean, var = _column_moments(Xs)
        keep = np.ones(Xs.shape[1], dtype=bool)
        if self.min_mean is not None:
            keep &= mean >= self.min_mean
        if self.top_k_variance is not None and keep.sum() > self.top_k_variance:
            ranked = np.where(keep, var, -np.inf)
            keep = np.zeros_like(keep)
            keep[np.argpartition(-ranked, self.top_k_variance - 1)[: self.top_k_variance]] = True
        if not keep.any():
            raise ConfigError(f"{m.source}: min_mean={self.min_mean:g} removed every gene "
                              f"(largest gene mean after scaling: {mean.max():.3g})")
        self.gene_index_ = np.flatnonzero(keep)
        self.genes_ = [m.genes[i] for i in self.gene_index_]
        self.fill_ = mean[self.gene_index_].astype(np.float32)  # stands in for genes absent later
        if self.quantile:
            Xk = Xs[:, self.gene_index_]
            ref = np.zeros(Xk.shape[1])
            for s in range(0, Xk.shape[0], _ROW_BLOCK):
                ref += np.sort(Xk[s:s + _ROW_BLOCK], axis=1).sum(0, dtype=np.float64)
            self.quantile_ref_ = (ref / Xk.shape[0]).astype(np.float32)
            _quantile_map_inplace(Xk, self.quantile_ref_)
            mean, var = _column_moments(Xk)
        else:
            mean, var = mean[self.gene_index_], var[self.gene_index_]
        # mean_ is kept even without z-scoring: it is the value a missing gene ends up with
        self.mean_ = mean.astype(np.float32)
        std = np.sqrt(var)
        constant = std <= np.finfo(np.float32).eps * np.maximum(np.abs(mean), 1.0)
        self.scale_ = np.where(constant, 1.0, std).astype(np.float32)
        return self

    # -------------------------------------------------------------- transform
    def transform(self, data, genes=None) -> np.ndarray:
        """float32 (n_samples, len(genes_)), columns aligned to ``genes_`` by name.

        CPM uses the library size over the fitted input genes the sample has; a fitted gene the
        data lack takes its training mean (0 after z-scoring), up to ``min_coverage``.
        """
        self._check_fitted()
        m = _Matrix(data, genes)
        X = m.X
        m.check_finite()
        input_cols = self._input_columns(m)
        kept_cols = input_cols[self.gene_index_]
        present = kept_cols >= 0
        if not present.all():
            coverage = present.mean()
            if coverage < self.min_coverage:
                examples = [self.genes_[i] for i in np.flatnonzero(~present)[:5]]
                raise GeneOverlapError(
                    f"{m.source}: only {100 * coverage:.1f}% of the model's {len(self.genes_)} genes found "
                    f"({int(present.sum())}), below the minimum {100 * self.min_coverage:.0f}%; missing "
                    f"e.g. {', '.join(examples)} (check gene id type, e.g. Ensembl vs symbols)")
        Z = X[:, np.where(present, kept_cols, 0)]  # always a new array: safe to work in place
        missing = np.flatnonzero(~present)
        if self.library_size_ or self.log_:
            Z[:, missing] = 0.0
            flat = int(Z.argmin())
            row, col = divmod(flat, Z.shape[1])
            if Z.size and Z[row, col] < 0:
                raise NegativeCountsError(
                    f"{m.source}: negative value {Z[row, col]:.4g} at {m.where(row, int(kept_cols[col]))}, "
                    f"so {'log2(x+1)' if self.log_ else 'CPM normalisation'} is impossible; the model was "
                    f"fit on {self.input_scale_}-scale data")
            self._scale_inplace(Z, self._library_totals(X, input_cols) if self.library_size_ else None)
        if len(missing):
            Z[:, missing] = self.fill_[missing]
        if self.quantile:
            _quantile_map_inplace(Z, self.quantile_ref_)
            if len(missing):
                Z[:, missing] = self.mean_[missing]
        if self.standardize:
            Z -= self.mean_
            Z /= self.scale_
            if self.clip is not None:
                np.clip(Z, -self.clip, self.clip, out=Z)
        return Z

    def fit_transform(self, data, genes=None) -> np.ndarray:
        return self.fit(data, genes).transform(data, genes)

    def _input_columns(self, m: _Matrix) -> np.ndarray:
        """Column of ``m`` holding each fitted input gene, -1 where the data lack it."""
        if m.genes == self.input_genes_:
            return np.arange(len(self.input_genes_))
        position = {g: i for i, g in enumerate(m.genes)}
        if len(position) != len(m.genes):
            known = set(self.input_genes_)
            seen: set[str] = set()
            for g in m.genes:
                if g in seen and g in known:
                    raise DuplicateGenesError(f"{m.source}: gene '{g}' appears more than once; "
                                              "collapse duplicates first (exprssl.read does)")
                seen.add(g)
        return np.array([position.get(g, -1) for g in self.input_genes_], dtype=np.int64)

    def _library_totals(self, X: np.ndarray, input_cols: np.ndarray) -> np.ndarray:
        """Per-sample total over the fitted input genes present, in float64, without copying the
        matrix: sum everything, then subtract the (usually few) columns the model does not know."""
        totals = X.sum(1, dtype=np.float64)
        if len(input_cols) == X.shape[1] and (input_cols >= 0).all():
            return totals
        unknown = np.ones(X.shape[1], dtype=bool)
        unknown[input_cols[input_cols >= 0]] = False
        known = np.flatnonzero(~unknown)
        if unknown.sum() > len(known):
            return X[:, known].sum(1, dtype=np.float64)
        return totals - X[:, unknown].sum(1, dtype=np.float64)

    # ----------------------------------------------------------- persistence
    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the options, and once fitted the resolved decisions and statistics."""
        d: dict[str, Any] = {"version": FORMAT_VERSION, **self.get_params()}
        if self.is_fitted:
            d.update(input_scale_=self.input_scale_, library_size_=bool(self.library_size_),
                     log_=bool(self.log_), n_samples_=self.n_samples_, input_genes_=list(self.input_genes_),
                     gene_index_=self.gene_index_.tolist(), genes_=list(self.genes_))
            d.update({k: getattr(self, k).tolist() for k in _FITTED_ARRAYS if hasattr(self, k)})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        version = d.get("version")
        if version == 1:  # options and fitted state were nested
            d = {**d.get("params", {}), **d.get("fitted", {}), "version": version}
        elif version != FORMAT_VERSION:
            raise ConfigError(f"unsupported preprocessor format version {version!r} "
                              f"(this exprssl reads {FORMAT_VERSION})")
        p = cls(**{k: d[k] for k in _OPTIONS if k in d})
        if "input_genes_" in d:
            p.input_scale_, p.library_size_, p.log_ = d["input_scale_"], bool(d["library_size_"]), bool(d["log_"])
            p.n_samples_ = int(d.get("n_samples_", 0))
            p.input_genes_ = [str(g) for g in d["input_genes_"]]
            p.gene_index_ = np.asarray(d["gene_index_"], dtype=np.int64)
            p.genes_ = [p.input_genes_[i] for i in p.gene_index_]
            for key in _FITTED_ARRAYS:
                if key in d:
                    setattr(p, key, np.asarray(d[key], dtype=np.float32))
            if not hasattr(p, "mean_"):  # version 1 without z-scoring: missing genes keep the fill
                p.mean_, p.scale_ = p.fill_, np.ones_like(p.fill_)
        return p

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataFileError(f"{path}: preprocessor file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataFileError(f"{path}: not a readable preprocessor file ({e})") from None
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise DataFileError(f"{path}: not a valid preprocessor file ({type(e).__name__}: {e})") from None

    def describe(self) -> list[str]:
        """Human-readable steps, for reports and manifests (decisions still 'auto' before fit)."""
        fitted = self.is_fitted
        steps = []
        for option, fitted_value, label in (("library_size", "library_size_", "CPM"),
                                            ("log", "log_", "log2(x+1)")):
            if fitted:
                if getattr(self, fitted_value):
                    steps.append(label)
            elif getattr(self, option) == "auto":
                steps.append(f"{label} (auto)")
            elif getattr(self, option):
                steps.append(label)
        if self.min_mean is not None:
            steps.append(f"genes with mean >= {self.min_mean:g}")
        if self.top_k_variance is not None:
            k = len(self.genes_) if fitted else self.top_k_variance
            steps.append(f"top {k} genes by variance")
        if self.quantile:
            steps.append("quantile normalisation")
        if self.standardize:
            steps.append("z-score" + (f", clip ±{self.clip:g}" if self.clip is not None else ""))
        return steps or ["none"]

    def __repr__(self) -> str:
        state = (f"fitted on {self.n_samples_} samples, {len(self.input_genes_)} genes -> {len(self.genes_)}"
                 if self.is_fitted else "not fitted")
        return f"Preprocessor({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())}; {state})"


def _check_unique(genes: list[str], source: str) -> None:
    seen: set[str] = set()
    for g in genes:
        if g in seen:
            raise DuplicateGenesError(f"{source}: gene '{g}' appears more than once; "
                                      "collapse duplicates first (exprssl.read does)")
        seen.add(g)
