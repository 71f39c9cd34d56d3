"""Preprocessing fit on training samples only, applied unchanged to any new data, saved as JSON.

It travels inside every saved model, so data from another source is aligned to the fitted genes
by name and transformed exactly as the encoder's training data was. ``Preprocessor`` is a
scikit-learn transformer: options in ``__init__`` (checked by ``fit``), learnt state in
attributes ending in ``_``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import (
    ConfigError,
    DataFileError,
    ExprsslError,
    GeneOverlapError,
    NegativeCountsError,
    NotFittedError,
)
from .genes import match_genes
from .options import OptionValueError, option, options_class, validate_options
from .scale import guess_scale
from .sources import ExpressionSource
from .utils import atomic_write_text
from .validation import check_matrix

log = logging.getLogger("exprssl")
FORMAT_VERSION = 1
MISSING_SHOWN = 5  # missing gene names quoted in coverage messages


def check_ignored_y(y, n_samples: int | None, what: str) -> None:
    """``y`` exists for scikit-learn pipelines and is ignored; refuse what is surely not labels
    (a string, or not one entry per sample): the second positional argument used to be the gene
    names (``Preprocessor.fit``) or the obsm key (``SSLModel.fit_transform``)."""
    if y is None:
        return
    if isinstance(y, str):
        raise ConfigError(
            f"{what}: the second argument is y, which is ignored (labels are never used), got "
            f"{y!r}; pass the obsm key as key={y!r}"
        )
    if n_samples is not None and hasattr(y, "__len__") and len(y) != n_samples:
        raise ConfigError(
            f"{what}: y has {len(y)} entries for {n_samples} samples; y is ignored (labels are "
            "never used): pass gene names as genes="
        )


# ------------------------------------------------------------------------------ option checks
def _parse_flag_or_auto(v: Any) -> bool | str:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v == "auto":
        return "auto"
    raise OptionValueError("true, false or auto")


@options_class("preprocessing")
@dataclass
class PreprocessingOptions:
    """The ``Preprocessor``'s options, checked by the package's one validator
    (``exprssl.options``): ``preprocessing: clip must be a finite number > 0 (or null), got -1``."""

    library_size: bool | str = option(
        "auto", "CPM scaling (auto: only for raw counts)", parse=_parse_flag_or_auto
    )
    log: bool | str = option(
        "auto", "log2(x+1) (auto: only for linear-scale values)", parse=_parse_flag_or_auto
    )
    min_mean: float | None = option(None, "drop genes with a lower mean", note="or null")
    top_k_variance: int | None = option(None, "keep the most variable genes", ge=1, note="or null")
    quantile: bool = option(False, "quantile-normalise every sample")
    standardize: bool = option(True, "z-score every gene")
    clip: float | None = option(10.0, "clip z-scores to [-clip, clip]", gt=0, note="or null")
    min_coverage: float = option(
        0.5, "smallest fraction of the fitted genes data to transform must have", ge=0, le=1
    )


OPTIONS: tuple[str, ...] = tuple(
    f.name for f in fields(PreprocessingOptions)
)  # the option names, for the CLI and config files


def _column_moments(X: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) variance with float64 accumulators, a row block at a
    time, so a large float32 matrix is never copied whole to float64."""
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    for s in range(0, n, block):
        total += X[s : s + block].sum(0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(X.shape[1])
    for s in range(0, n, block):
        sq += np.square(X[s : s + block] - mean).sum(0, dtype=np.float64)
    return mean, sq / n


def _scale_steps(
    Xm: np.ndarray, scale: str, opts: dict[str, Any], source: str
) -> tuple[bool, bool]:
    """Whether CPM and log2 apply: ``"auto"`` decides from the value scale; an impossible
    choice (log or CPM of negative values) is refused, a second log warned about."""
    lib = scale == "counts" if opts["library_size"] == "auto" else opts["library_size"]
    do_log = scale in ("counts", "linear") if opts["log"] == "auto" else opts["log"]
    if do_log and scale == "standardized":
        raise NegativeCountsError(
            f"{source}: negative values, so log2(x+1) is impossible; "
            "the data look already standardised (use log=False)"
        )
    if lib and Xm.min() < 0:
        raise NegativeCountsError(f"{source}: negative values where counts are expected for CPM")
    if do_log and opts["log"] is True and scale == "log":
        log.warning(
            "%s: values already look log-scale (max %.3g); applying log2(x+1) again",
            source,
            Xm.max(),
        )
    return lib, do_log


def _kept_genes(mean: np.ndarray, var: np.ndarray, opts: dict[str, Any], source: str) -> np.ndarray:
    """The gene filter: a mean of at least ``min_mean``, then the ``top_k_variance`` most
    variable; a filter that removes every gene is refused."""
    keep = np.ones(len(mean), dtype=bool)
    if opts["min_mean"] is not None:
        keep &= mean >= opts["min_mean"]
    k = opts["top_k_variance"]
    if k is not None and keep.sum() > k:
        var = var.copy()
        var[~keep] = -np.inf
        top = np.argpartition(-var, k - 1)[:k]
        keep = np.zeros_like(keep)
        keep[top] = True
    if not keep.any():
        raise ConfigError(
            f"{source}: gene filtering (min_mean={opts['min_mean']}) removed every gene"
        )
    return keep


class Preprocessor(TransformerMixin, BaseEstimator):
    """CPM -> log2(x+1) -> gene filter -> quantile normalisation -> z-score with clipping.

    Each step can be switched off; ``"auto"`` decides from the training data's value scale
    (``exprssl.scale.guess_scale``): CPM only for raw counts, log only for linear-scale values.
    Options are checked by ``fit`` (or ``check_params()``) and take effect at ``fit``; fitted
    attributes end in ``_`` and ``transform`` never changes them. ``min_coverage`` is the
    smallest fraction of the fitted genes that data to transform must have (missing genes are
    imputed with their training mean and reported as a warning).

    Parameters
    ----------
    library_size
        Scale each sample to counts per million: True, False or ``"auto"``.
    log
        log2(x + 1): True, False or ``"auto"``.
    min_mean
        Keep genes whose mean (after CPM/log) is at least this; None keeps all.
    top_k_variance
        Keep the N most variable genes; None keeps all.
    quantile
        Quantile-normalise each sample to the training reference distribution.
    standardize
        z-score each gene with the training mean and standard deviation.
    clip
        Clip z-scores to [-clip, clip]; None does not clip.
    min_coverage
        Smallest fraction of the fitted genes data to transform must have.
    """

    def __init__(
        self,
        *,
        library_size: bool | str = "auto",
        log: bool | str = "auto",
        min_mean: float | None = None,
        top_k_variance: int | None = None,
        quantile: bool = False,
        standardize: bool = True,
        clip: float | None = 10.0,
        min_coverage: float = 0.5,
    ):
        self.library_size = library_size
        self.log = log
        self.min_mean = min_mean
        self.top_k_variance = top_k_variance
        self.quantile = quantile
        self.standardize = standardize
        self.clip = clip
        self.min_coverage = min_coverage

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Preprocessor:
        """A Preprocessor from a mapping of options (a config file's ``preprocessing:``); an
        unknown name or a non-mapping is a one-line ConfigError listing the accepted names.

        Parameters
        ----------
        options
            Option names (``Preprocessor``'s parameters) to values.

        Returns
        -------
        Preprocessor
            Unfitted.

        Raises
        ------
        exprssl.errors.ConfigError
            An unknown option name, or ``options`` is not a mapping.
        """
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"preprocessing options must be a mapping of option: value "
                f"(accepted: {', '.join(OPTIONS)}), got {options!r}"
            )
        unknown = sorted(set(map(str, options)) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown preprocessing option(s): {', '.join(unknown)}; "
                f"accepted: {', '.join(OPTIONS)}"
            )
        return cls(**options)

    def check_params(self) -> dict[str, Any]:
        """The options, checked and normalised to plain JSON-able values; a one-line ConfigError
        names the first bad one. ``fit`` calls it; call it yourself to fail before loading data."""
        params = {name: getattr(self, name) for name in OPTIONS}
        return asdict(validate_options(PreprocessingOptions, params, "preprocessing"))

    # ----------------------------------------------------------------- helpers
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "genes_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified: bulk expression matrices are dense anyway
        tags.transformer_tags.preserves_dtype = ["float32"]  # always float32 out
        return tags

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                "this Preprocessor is not fitted yet: call fit() on training samples first"
            )

    def _matrix(self, data, genes) -> tuple[np.ndarray, list[str] | None, str, Any]:
        """The checked float32 matrix (``exprssl.validation.check_matrix``), its gene names (None
        when it has none), source and sample ids."""
        matrix, names, source, samples = ExpressionSource.in_memory(data).matrix(genes)
        if names is not None and len(matrix.shape) == 2 and len(names) != matrix.shape[1]:
            raise ConfigError(
                f"{source}: {len(names)} gene names for a matrix with {matrix.shape[1]} columns"
            )
        return check_matrix(matrix, source, samples=samples, genes=names), names, source, samples

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
    def fit(self, X, y=None, *, genes=None) -> Preprocessor:
        """Learn the steps from training samples ``X``: an AnnData, a DataFrame (columns = genes)
        or an array (``genes`` names its columns). ``y`` is ignored (for scikit-learn pipelines).

        Parameters
        ----------
        X
            Training samples.
        y
            Ignored.
        genes
            Gene names of an array's columns.

        Returns
        -------
        Preprocessor
            ``self``, fitted.

        Raises
        ------
        exprssl.errors.ConfigError
            An invalid option.
        exprssl.errors.ExprsslError
            Unusable data (non-finite or non-numeric values, duplicate genes, ...).
        """
        opts = self.check_params()
        Xm, names, named, source, samples = self._training_matrix(X, y, genes)
        d = Xm.shape[1]
        scale = guess_scale(Xm, source=source, samples=samples, genes=names)
        lib, do_log = _scale_steps(Xm, scale, opts, source)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)  # a refit never keeps state of the previous fit
        self.options_ = opts
        self.input_scale_, self.library_size_, self.log_ = scale, lib, do_log
        self.input_genes_ = names
        self.n_features_in_ = d
        if named:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        Xs = self._scale_counts(Xm)

        mean, var = _column_moments(Xs)
        self.gene_index_ = np.flatnonzero(_kept_genes(mean, var, opts, source))
        self.genes_ = [names[i] for i in self.gene_index_]
        self.fill_ = mean[self.gene_index_].astype(np.float32)  # imputes genes absent later
        if opts["quantile"] or opts["standardize"]:
            self._fit_gene_statistics(Xs, mean, var, opts)
        return self

    def _training_matrix(self, X, y, genes) -> tuple[np.ndarray, list[str], bool, str, Any]:
        """``fit``'s checked matrix: its gene names (positions as names when it has none),
        whether it had names, its source and sample ids."""
        Xm, names, source, samples = self._matrix(X, genes)
        n, d = Xm.shape
        check_ignored_y(y, n, "Preprocessor.fit")
        if n < 2:
            raise ConfigError(f"{source}: need at least 2 samples to fit preprocessing, got {n}")
        if d < 1:
            raise ConfigError(f"{source}: no genes (0 columns) to fit preprocessing on")
        named = names is not None
        if not named:
            names = [str(i) for i in range(d)]
        index = pd.Index(names)
        if not index.is_unique:
            dups = index[index.duplicated()].unique()
            raise ConfigError(
                f"{source}: {len(dups)} duplicate gene names, e.g. {', '.join(dups[:5])}; "
                "collapse them first (exprssl.read_file does)"
            )
        return Xm, names, named, source, samples

    def _fit_gene_statistics(self, Xs: np.ndarray, mean, var, opts: dict[str, Any]) -> None:
        """The quantile reference and the z-score means and scales of the kept genes."""
        Xk = Xs[:, self.gene_index_] if len(self.gene_index_) < Xs.shape[1] else Xs
        if opts["quantile"]:
            self.quantile_ref_ = _column_moments(np.sort(Xk, axis=1))[0].astype(np.float32)
            Xk = self._quantile(Xk)
            kmean, kvar = _column_moments(Xk)
        else:
            kmean, kvar = mean[self.gene_index_], var[self.gene_index_]
        if opts["standardize"]:
            self.mean_ = kmean.astype(np.float32)
            std = np.sqrt(kvar)
            std[std < 1e-8] = 1.0
            self.scale_ = std.astype(np.float32)

    def _quantile(self, X: np.ndarray, block: int = 256) -> np.ndarray:
        """Each sample's values replaced by the reference quantiles of their ranks; tied values
        (the many zeros of count data) share the mean reference over their ranks, as in the
        standard method, instead of getting distinct values in arbitrary (gene-order) order."""
        d = X.shape[1]
        cum_ref = np.concatenate([[0.0], np.cumsum(self.quantile_ref_, dtype=np.float64)])
        positions = np.arange(d)
        out = np.empty(X.shape, dtype=np.float32)
        for r0 in range(0, X.shape[0], block):  # bounded memory: a few int arrays per block
            x = X[r0 : r0 + block]
            order = np.argsort(x, axis=1, kind="stable")
            xs = np.take_along_axis(x, order, axis=1)
            starts_run = np.ones(xs.shape, dtype=bool)
            starts_run[:, 1:] = xs[:, 1:] != xs[:, :-1]
            ends_run = np.ones(xs.shape, dtype=bool)
            ends_run[:, :-1] = starts_run[:, 1:]
            first = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=1)
            last = np.minimum.accumulate(np.where(ends_run, positions, d - 1)[:, ::-1], axis=1)[
                :, ::-1
            ]
            values = (cum_ref[last + 1] - cum_ref[first]) / (last - first + 1)
            np.put_along_axis(out[r0 : r0 + block], order, values.astype(np.float32), axis=1)
        return out

    # -------------------------------------------------------------- transform
    def gene_coverage(self, genes, source: str = "data", *, report: bool = True) -> float:
        """The fraction of the fitted genes found in ``genes``. Below ``min_coverage`` it is a
        GeneOverlapError; with ``report``, a partial coverage is logged as a WARNING on logger
        ``exprssl`` (found N of M, %, and a few missing names): missing genes are imputed."""
        self._check_fitted()
        return self._coverage(self._model_names(genes, source, report), source, report)

    def _coverage(self, names: list[str], source: str, report: bool) -> float:
        """``gene_coverage`` of names already matched to the fitted genes (``_model_names``)."""
        present = set(names)
        missing = [g for g in self.genes_ if g not in present]
        n_model = len(self.genes_)
        found = n_model - len(missing)
        coverage = found / n_model
        if not missing:
            return coverage
        shown = ", ".join(missing[:MISSING_SHOWN]) + (
            ", ..." if len(missing) > MISSING_SHOWN else ""
        )
        what = f"{found} of the model's {n_model} genes found ({100 * coverage:.1f}%)"
        if coverage < self.options_["min_coverage"]:
            raise GeneOverlapError(
                f"{source}: only {what}; missing e.g. {shown}; below the minimum "
                f"{100 * self.options_['min_coverage']:.0f}% (min_coverage)"
            )
        if report:
            log.warning(
                "%s: %s; %d missing (%s) are imputed with their training mean",
                source,
                what,
                len(missing),
                shown,
            )
        return coverage

    def _model_names(self, names, source: str = "data", report: bool = False) -> list[str]:
        """The data's gene names, each one found among the fitted genes (by name, versions
        stripped, or through the identifier table) renamed to that fitted gene."""
        names = [str(g) for g in names]
        if names == self.input_genes_:
            return names
        match = match_genes(names, self.input_genes_)
        found = match.index >= 0
        renamed = np.asarray(names, dtype=object)
        renamed[match.index[found]] = np.asarray(self.input_genes_, dtype=object)[found]
        renamed = renamed.tolist()
        if report and (match.mapped or match.ambiguous):
            log.info("%s: %s", source, match.summary())
        return renamed

    def _names_for_unnamed(self, d: int, source: str) -> list[str]:
        """An array without gene names can only be taken column by column in the fit order."""
        if d != self.n_features_in_:
            raise GeneOverlapError(
                f"{source}: X has {d} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input; columns without gene names can only be "
                "taken in the fit order: pass gene names (a DataFrame, an AnnData or genes=) to "
                "align them by name"
            )
        if hasattr(self, "feature_names_in_"):
            log.warning(
                "%s: no gene names; its %d columns are taken as the fitted genes in their fit "
                "order (pass a DataFrame, an AnnData or genes= to align them by name)",
                source,
                d,
            )
        return self.input_genes_

    def transform(self, X, genes=None, *, report_coverage: bool = True) -> np.ndarray:
        """``X`` aligned by gene name to the fitted genes and transformed: float32
        ``(n_samples, len(genes_))``. Missing genes are imputed (see ``gene_coverage``;
        ``report_coverage=False`` when transforming block after block of one source).

        Parameters
        ----------
        X
            Samples: an AnnData, a DataFrame or an array.
        genes
            Gene names of an array's columns.
        report_coverage
            Warn about imputed genes.

        Returns
        -------
        numpy.ndarray
            float32 (n_samples, len(genes_)).

        Raises
        ------
        exprssl.errors.GeneOverlapError
            Fewer than ``min_coverage`` of the fitted genes in ``X``.
        """
        self._check_fitted()
        Xm, names, source, _ = self._matrix(X, genes)
        if names is None:
            names = self._names_for_unnamed(Xm.shape[1], source)
        if names == self.input_genes_:
            every = (
                len(self.gene_index_) == Xm.shape[1]
            )  # gene_index_ is sorted: all genes, in order
            Xs = self._scale_counts(Xm, None if every else self.gene_index_)
        else:
            names = self._model_names(names, source, report_coverage)  # matched once
            self._coverage(names, source, report_coverage)
            # library size from the genes the sample has that the model knows (the training
            # basis)
            pos = {g: i for i, g in enumerate(names)}
            shared_in = [pos[g] for g in self.input_genes_ if g in pos]
            local = {names[j]: k for k, j in enumerate(shared_in)}
            col = np.array([local.get(g, -1) for g in self.genes_])
            present = np.flatnonzero(col >= 0)
            Xin_scaled = self._scale_counts(Xm[:, shared_in])
            Xs = np.empty((Xm.shape[0], len(self.genes_)), dtype=np.float32)
            Xs[:] = self.fill_
            Xs[:, present] = Xin_scaled[:, col[present]]
        if self.options_["quantile"]:
            Xs = self._quantile(Xs)
        if self.options_["standardize"]:
            Xs = np.subtract(Xs, self.mean_, out=Xs if Xs is not Xm else None, dtype=np.float32)
            Xs /= self.scale_
            if self.options_["clip"] is not None:
                np.clip(Xs, -self.options_["clip"], self.options_["clip"], out=Xs)
        if Xs is Xm:  # no step applied: still a new array, so that training never aliases user data
            Xs = Xm.copy()
        return np.ascontiguousarray(Xs, dtype=np.float32)

    def fit_transform(self, X, y=None, *, genes=None) -> np.ndarray:
        return self.fit(X, genes=genes).transform(X, genes)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The kept genes, in output column order."""
        self._check_fitted()
        return np.asarray(self.genes_, dtype=object)

    # ----------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (format version 1): the options, and the fitted state if fitted."""
        fitted = self.__sklearn_is_fitted__()
        d: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "params": self.options_ if fitted else self.check_params(),
        }
        if fitted:
            d["fitted"] = {
                "input_scale_": self.input_scale_,
                "library_size_": self.library_size_,
                "log_": self.log_,
                "input_genes_": self.input_genes_,
                "gene_index_": self.gene_index_.tolist(),
                "fill_": self.fill_.tolist(),
                **(
                    {"quantile_ref_": self.quantile_ref_.tolist()}
                    if self.options_["quantile"]
                    else {}
                ),
                **(
                    {"mean_": self.mean_.tolist(), "scale_": self.scale_.tolist()}
                    if self.options_["standardize"]
                    else {}
                ),
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        """The inverse of ``to_dict``; anything inconsistent is a one-line ConfigError."""
        if not isinstance(d, Mapping) or d.get("version") != FORMAT_VERSION:
            version = d.get("version") if isinstance(d, Mapping) else None
            raise ConfigError(
                f"unsupported preprocessor format (version {version!r}, expected {FORMAT_VERSION})"
            )
        p = cls.from_options(d.get("params", {}))
        f = d.get("fitted")
        if f:
            p._set_fitted(f, p.check_params())
        return p

    def _set_fitted(self, f: Mapping[str, Any], opts: dict[str, Any]) -> None:
        """Restore and cross-check the fitted state written by ``to_dict``."""
        try:
            genes = [str(g) for g in f["input_genes_"]]
            index = np.asarray(f["gene_index_"], dtype=np.int64)
            arrays = {
                k: np.asarray(f[k], dtype=np.float32)
                for k in ("fill_", "quantile_ref_", "mean_", "scale_")
                if k in f
            }
            scale, lib, do_log = str(f["input_scale_"]), f["library_size_"], f["log_"]
        except KeyError as e:
            raise ConfigError(f"fitted state lacks {e.args[0]}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"fitted state is malformed ({e})") from None
        if (
            index.ndim != 1
            or not len(index)
            or index.min() < 0
            or index.max() >= len(genes)
            or (np.diff(index) <= 0).any()
        ):
            raise ConfigError(
                f"fitted gene_index_ is not an increasing list of positions in the "
                f"{len(genes)} input genes"
            )
        needed = (
            ["fill_"]
            + (["quantile_ref_"] if opts["quantile"] else [])
            + (["mean_", "scale_"] if opts["standardize"] else [])
        )
        for key in needed:
            if key not in arrays or arrays[key].shape != index.shape:
                got = "missing" if key not in arrays else f"{arrays[key].size} values"
                raise ConfigError(
                    f"fitted {key} is {got}, expected {len(index)} (one per kept gene)"
                )
        if not isinstance(lib, bool) or not isinstance(do_log, bool):
            raise ConfigError("fitted library_size_ and log_ must be true or false")
        self.options_ = opts
        self.input_scale_, self.library_size_, self.log_ = scale, lib, do_log
        self.input_genes_ = genes
        self.n_features_in_ = len(genes)
        if genes != [str(i) for i in range(len(genes))]:
            self.feature_names_in_ = np.asarray(genes, dtype=object)
        self.gene_index_ = index
        self.genes_ = [genes[i] for i in index]
        for key in needed:
            setattr(self, key, arrays[key])

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted steps as JSON (atomically), for ``load``.

        Parameters
        ----------
        path
            The file to write.

        Returns
        -------
        None
        """
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preprocessor:
        """Read a file written by ``save``; any problem is a one-line DataFileError naming it.

        Parameters
        ----------
        path
            A JSON file written by ``save``.

        Returns
        -------
        Preprocessor
            The fitted preprocessor.

        Raises
        ------
        exprssl.errors.DataFileError
            A missing, unreadable or invalid file.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except FileNotFoundError:
            raise DataFileError(f"{path}: preprocessor file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataFileError(f"{path}: not a valid preprocessor file (not JSON: {e})") from None
        try:
            return cls.from_dict(d)
        except ExprsslError as e:
            raise DataFileError(f"{path}: not a valid preprocessor file ({e})") from None

    def describe(self) -> list[str]:
        """Human-readable steps, for reports and manifests."""
        self._check_fitted()
        opts = self.options_
        steps = []
        if self.library_size_:
            steps.append("CPM")
        if self.log_:
            steps.append("log2(x+1)")
        if opts["min_mean"] is not None:
            steps.append(f"genes with mean >= {opts['min_mean']:g}")
        if opts["top_k_variance"] is not None:
            steps.append(f"top {opts['top_k_variance']} genes by variance")
        if opts["quantile"]:
            steps.append("quantile normalisation")
        if opts["standardize"]:
            steps.append(
                "z-score" + (f", clip ±{opts['clip']:g}" if opts["clip"] is not None else "")
            )
        return steps or ["none"]
