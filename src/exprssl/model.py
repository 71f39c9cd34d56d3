"""`SSLModel`: the scikit-learn / scverse style front door to pretraining and embedding.

A fitted model is self-contained: weights, the method's config, the gene list and the fitted
preprocessing travel together, so embedding data from another source aligns genes by name and
applies exactly the transformation the encoder was trained on.

``SSLModel`` is a scikit-learn transformer: its options are the keyword parameters of
``__init__`` (stored as given, checked by ``fit`` or ``check_params()``), learnt state lives in
attributes ending in ``_``, and it works inside ``Pipeline`` and ``GridSearchCV`` on arrays,
DataFrames and AnnData alike.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone

from .card import describe_data
from .errors import (
    ConfigError,
    NotFittedError,
)
from .genes import match_genes
from .methods import build_method, check_method_params, check_model_memory, get_method
from .preprocessing import OPTIONS as PREPROCESSING_OPTIONS
from .preprocessing import Preprocessor, check_ignored_y
from .sources import ExpressionSource
from .training import TrainConfig
from .utils import seed_everything
from .validation import check_key

log = logging.getLogger("exprssl")
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


class ResolvedParams(NamedTuple):
    """What ``SSLModel.check_params`` returns: every option checked, nothing fitted yet."""

    method_params: dict[str, Any]  # the method's complete options, defaults filled in
    train: TrainConfig
    preprocessor: Preprocessor  # a copy: unfitted, or the caller's fitted one (used as it is)


def _pretrain(
    source: ExpressionSource, build: Callable[[int], torch.nn.Module], prep: Preprocessor, cfg
) -> tuple[Any, list[dict]]:
    """``(method, history)``: the method built for the preprocessed width (after seeding, so
    weight init is part of the seeded run) and trained on the source's samples, streamed in
    bounded memory or from one preprocessed matrix."""
    from .training import train_method, train_streaming

    if source.streamed:
        seed_everything(cfg.seed)
        method = build(len(prep.genes_))
        return method, train_streaming(method, source.store, prep, cfg)
    Xp = prep.transform(source)
    seed_everything(cfg.seed)
    method = build(Xp.shape[1])
    return method, train_method(method, torch.from_numpy(Xp), cfg)


class SSLModel(TransformerMixin, BaseEstimator):
    """Self-supervised encoder for expression profiles.

    >>> m = SSLModel("scarf", epochs=20, method_params={"corruption_rate": 0.5})
    >>> m.fit(adata)                        # unlabeled; preprocessing is fit on these samples
    >>> Z = m.transform(adata2, key="X_scarf")   # embeddings, also in adata2.obsm["X_scarf"]
    >>> m.save("scarf_model"); m2 = SSLModel.load("scarf_model")

    Fitted attributes: ``method_`` (the torch module), ``preprocessor_`` (the fitted
    preprocessing), ``method_params_``, ``train_config_``, ``history_`` (per-epoch losses and
    monitors), ``genes_`` (the encoder's input genes), ``embedding_dim_``, ``n_features_in_``,
    ``feature_names_in_`` (for inputs with gene names), ``model_dir_`` (where it was last saved or
    loaded from, else None).

    Parameters
    ----------
    method
        A registered method: scarf, byol, vime, barlow, mae.
    method_params
        The method's own options, e.g. ``corruption_rate``, ``temperature``, ``hidden_dims``.
    preprocessor
        A ``Preprocessor``, a dict of its options, or None for the defaults. An unfitted one is
        fit on the training samples, a fitted one is used as it is; the object you pass is never
        modified.
    epochs, batch_size, optimizer, lr, weight_decay, val_fraction, patience, seed
        The training loop's options (``exprssl.training.TrainConfig``; an optimizer, lr or
        weight_decay of None takes the method's own).
    accelerator, devices, num_nodes, strategy, precision, num_workers
        Hardware and Lightning options (``TrainConfig``).
    progress
        Show a progress bar.
    log_dir
        Directory for the CSV loss log and checkpoints; None for none.
    **misplaced
        Method options passed as keywords (the API before ``method_params``): a ConfigError
        that says where they go.
    """

    TRAIN_FIELDS: ClassVar[tuple[str, ...]] = _TRAIN_FIELDS  # the parameters of its TrainConfig

    def __init__(
        self,
        method: str = "scarf",
        *,
        method_params: Mapping[str, Any] | None = None,
        preprocessor: Preprocessor | Mapping[str, Any] | None = None,
        epochs: int = 50,
        batch_size: int = 256,
        optimizer: str | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        val_fraction: float = 0.1,
        patience: int = 10,
        seed: int = 0,
        accelerator: str = "auto",
        devices: Any = "auto",
        num_nodes: int = 1,
        strategy: str = "auto",
        precision: str | None = None,
        num_workers: int = 0,
        progress: bool = True,
        log_dir: str | None = None,
        **misplaced: Any,
    ):
        if misplaced:  # scikit-learn forbids **kwargs as parameters; this only explains the error
            raise ConfigError(
                f"SSLModel got unknown keyword(s) {', '.join(sorted(misplaced))}: options of the "
                f"method go in method_params, e.g. SSLModel({method!r}, "
                f"method_params={misplaced!r}); SSLModel's own keywords are "
                f"{', '.join(self._get_param_names())}"
            )
        self.method = method
        self.method_params = method_params
        self.preprocessor = preprocessor
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.num_nodes = num_nodes
        self.strategy = strategy
        self.precision = precision
        self.num_workers = num_workers
        self.progress = progress
        self.log_dir = log_dir

    # ------------------------------------------------------------- options
    def check_params(self) -> ResolvedParams:
        """Check every option without touching data or files; returns the method's complete
        options, the ``TrainConfig`` and the preprocessor to use (a copy). ``fit`` calls it, and
        the CLI calls it before loading data or writing anything: the same one-line ConfigError."""
        if not isinstance(self.method, str):
            raise ConfigError(f"method must be a method name, got {self.method!r}")
        get_method(self.method)
        if self.method_params is not None and not isinstance(self.method_params, Mapping):
            raise ConfigError(
                f"method_params must be a dict of the options of method '{self.method}', "
                f"got {self.method_params!r}"
            )
        method_params = check_method_params(
            self.method, copy.deepcopy(dict(self.method_params or {}))
        )
        train = TrainConfig(**{name: copy.deepcopy(getattr(self, name)) for name in _TRAIN_FIELDS})
        train.validate()
        preprocessor = self._preprocessor_copy()
        preprocessor.check_params()
        return ResolvedParams(method_params, train, preprocessor)

    def _preprocessor_copy(self) -> Preprocessor:
        p = self.preprocessor
        if p is None:
            return Preprocessor()
        if isinstance(p, Preprocessor):
            return copy.deepcopy(p) if p.__sklearn_is_fitted__() else clone(p)
        if isinstance(p, Mapping):
            return Preprocessor.from_options(p)
        raise ConfigError(
            f"preprocessor must be an exprssl.Preprocessor, a dict of its options "
            f"({', '.join(PREPROCESSING_OPTIONS)}) or None, got {p!r}"
        )

    # ------------------------------------------------------------- fitting
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "method_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified: bulk expression matrices are dense anyway
        tags.transformer_tags.preserves_dtype = ["float32"]  # embeddings are always float32
        return tags

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                "this SSLModel is not fitted yet: call fit(X) or SSLModel.load(path)"
            )

    def fit(self, X, y=None, *, stream: bool | None = None, layer: str | None = None) -> SSLModel:
        """Pretrain on the samples of ``X`` (``y`` and labels, if any, are ignored).

        ``X`` is an AnnData, a pandas DataFrame (columns = genes, index = samples), an array, a
        path or a bundled dataset's name, or an out-of-core store (a path written by
        ``exprssl convert``, or an ``exprssl.store.ExpressionStore``): a store is streamed in
        bounded memory, and the preprocessing is fit on a random sample of at most 10,000 of its
        rows. An h5ad path streams the same way with ``stream=True``, or by default when it
        would not fit comfortably in memory.

        Parameters
        ----------
        X
            The unlabeled training samples (see above).
        y
            Ignored.
        stream
            Stream an h5ad path in bounded memory; None decides from its size.
        layer
            Read the values from this AnnData layer instead of ``X`` (an AnnData or an h5ad
            path; e.g. ``"counts"``, where scanpy keeps raw counts). An unknown layer is a
            one-line error naming the layers there are.

        Returns
        -------
        SSLModel
            ``self``, fitted.

        Raises
        ------
        exprssl.errors.ExprsslError
            Bad input data (a one-line error naming it), or a diverged run
            (``TrainingDivergedError``).
        """
        check_ignored_y(y, ExpressionSource.count_samples(X), "SSLModel.fit")
        params = self.check_params()
        source = ExpressionSource.resolve(X, stream, layer=layer)
        train = params.train
        prep = source.fit_preprocessor(params.preprocessor, seed=train.seed)

        def build(width: int):
            check_model_memory(self.method, width, params.method_params)  # before allocating it
            return build_method(self.method, width, **params.method_params)

        method, history = _pretrain(source, build, prep, train)
        n_features, names = source.features()
        self.set_fitted_state(
            method, prep, train, pd.DataFrame.from_records(history), n_features, names, None
        )
        self.data_sources_ = describe_data(source)
        return self

    # ----------------------------------------------------------- embedding
    def embed_preprocessed(
        self, X: np.ndarray | torch.Tensor, batch_size: int = 2048
    ) -> np.ndarray:
        """Embeddings of rows already transformed by ``self.preprocessor_``.

        Parameters
        ----------
        X
            Preprocessed rows (n_samples, len(preprocessor_.genes_)).
        batch_size
            Rows per forward pass.

        Returns
        -------
        numpy.ndarray
            float32 embeddings (n_samples, embedding_dim_).
        """
        self._check_fitted()
        enc = self.method_.encoder
        was_training = enc.training
        enc.eval()
        device = next(enc.parameters()).device
        X = torch.as_tensor(X, dtype=torch.float32)
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                out.append(
                    self.method_.embed(X[start : start + batch_size].to(device)).float().cpu()
                )
        enc.train(was_training)
        if not out:
            return np.zeros((0, self.embedding_dim_), dtype=np.float32)
        return torch.cat(out).numpy()

    def transform(
        self,
        X,
        *,
        key: str | None = None,
        return_anndata: bool = False,
        stream: bool | None = None,
        progress: Callable[[int, int], Any] | None = None,
        layer: str | None = None,
    ):
        """Embed ``X`` (genes aligned by name): a float32 array (n_samples, embedding_dim_).

        ``X`` is anything ``fit`` takes. With an AnnData and ``key``, the embeddings are also
        stored in ``X.obsm[key]``. With ``return_anndata=True`` a new AnnData is returned
        instead, and ``X`` is left alone: the input's ``obs`` (sample ids for a DataFrame or an
        array), the embeddings in ``obsm[key or "X_<method>"]``, and ``uns["exprssl"]`` with the
        model directory, method, source and number of model genes. A store is read block by
        block so that only the embeddings are held in memory; ``progress(done, total)`` is
        called after each block. ``stream`` and ``layer`` as in ``fit``.

        Parameters
        ----------
        X
            The samples to embed.
        key
            The ``obsm`` key for the embeddings.
        return_anndata
            Return a new AnnData instead of an array.
        stream
            As in ``fit``.
        progress
            Called as ``progress(done, total)`` after each block of a store.
        layer
            As in ``fit``.

        Returns
        -------
        numpy.ndarray or anndata.AnnData
            float32 embeddings (n_samples, embedding_dim_), or a new AnnData holding them.

        Raises
        ------
        exprssl.errors.GeneOverlapError
            Too few of the model's genes in ``X``.
        """
        self._check_fitted()
        if key is not None:  # the embed command's check, in the same words
            check_key(key)
        return self._transform(
            ExpressionSource.resolve(X, stream, layer=layer),
            key=key,
            return_anndata=return_anndata,
            progress=progress,
        )

    def _transform(self, source: ExpressionSource, *, key, return_anndata, progress=None):
        """``transform`` of an already resolved source."""
        if key is not None and not return_anndata and not source.is_anndata:
            raise ConfigError(
                f"key={key!r} stores the embeddings in an AnnData's obsm, and "
                f"{'a store' if source.streamed else type(source.data).__name__} has none: use "
                "the returned array, or return_anndata=True"
            )
        Z = source.embed(self.embed_preprocessed, self.preprocessor_, self.embedding_dim_, progress)
        if not return_anndata:
            if key is not None:
                source.data.obsm[key] = Z
            return Z
        import anndata as ad

        result = ad.AnnData(obs=source.obs(), obsm={key or f"X_{self.method}": Z})
        result.uns["exprssl"] = {
            "model": self.model_dir_ or "(not saved)",
            "method": self.method,
            "source": source.provenance(),
            "n_model_genes": len(self.genes_),
        }
        names = source.features()[1]
        if names is not None:
            result.uns["exprssl"]["gene_alignment"] = self._alignment(names)
        return result

    def _alignment(self, names: list[str]) -> dict[str, Any]:
        """How the model's genes were found in the data, kept with the embeddings: the one-line
        summary, and every gene not matched by name (mapped through the identifier table,
        ambiguous: never guessed, or missing: imputed) with the data's name(s)."""
        report = match_genes(names, self.preprocessor_.input_genes_)
        table = report.to_frame().astype(str)
        return {"summary": report.summary(), **{c: table[c].to_numpy(dtype=str) for c in table}}

    def fit_transform(
        self,
        X,
        y=None,
        *,
        key: str | None = None,
        return_anndata: bool = False,
        stream: bool | None = None,
        layer: str | None = None,
    ):
        """``fit`` then ``transform`` the same samples (read once); ``y`` is ignored, so a
        Pipeline's labels are never taken for an obsm key.

        Parameters
        ----------
        X
            The samples to fit on and embed (anything ``fit`` takes).
        y
            Ignored.
        key, return_anndata, stream, layer
            As in ``transform``.

        Returns
        -------
        numpy.ndarray or anndata.AnnData
            As ``transform``.
        """
        if key is not None:  # before the fit, not after it
            check_key(key)
        source = ExpressionSource.resolve(X, stream, layer=layer)
        self.fit(source, y)
        return self._transform(source, key=key, return_anndata=return_anndata)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the embedding dimensions: ``<method>0``, ``<method>1``, ...

        Parameters
        ----------
        input_features
            Ignored (scikit-learn's signature).

        Returns
        -------
        numpy.ndarray
            ``embedding_dim_`` names, dtype object.
        """
        self._check_fitted()
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError(
                f"input_features has {len(input_features)} names, but SSLModel was fitted "
                f"on {self.n_features_in_} features"
            )
        return np.asarray([f"{self.method}{i}" for i in range(self.embedding_dim_)], dtype=object)

    # ---------------------------------------------------------- persistence
    def config(self) -> dict[str, Any]:
        """The content of a saved model's ``config.json``."""
        from .model_io import model_config

        self._check_fitted()
        return model_config(self)

    def save(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        license: str | None = None,
        datasets: list[str] | None = None,
    ) -> Path:
        """Write the model directory: it appears whole or not at all (``exprssl.model_io``).

        Refused with a one-line OutputPathError, before anything is written: a path that exists
        and is not an exprssl model directory (exprssl never deletes or hides what it did not
        write), an existing model unless ``overwrite``, a path another save is writing right now.
        Non-finite weights (a diverged run) are refused with a TrainingDivergedError.

        Parameters
        ----------
        path
            The model directory to write.
        overwrite
            Replace an existing model directory there.
        license
            The card's Hub license id (e.g. ``"cc-by-4.0"``); ``"unknown"`` when not given, as
            the weights derive from training data whose terms exprssl cannot know.
        datasets
            Hub dataset ids of the training data, listed in the card's ``datasets``.

        Returns
        -------
        Path
            ``path``.
        """
        from .model_io import save_model

        self._check_fitted()
        return save_model(self, Path(path), overwrite=overwrite, license=license, datasets=datasets)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> SSLModel:
        """A model saved by ``save`` (``exprssl.model_io``). A missing, damaged or inconsistent
        model directory is a one-line error naming the file at fault. Loading runs no code:
        weights are safetensors (a 0.3 ``weights.pt`` is read with ``weights_only=True``).

        Parameters
        ----------
        path
            A model directory written by ``save``.
        map_location
            Where the weights go (``"cpu"``, ``"cuda"``, ...).

        Returns
        -------
        SSLModel
            The fitted model.
        """
        from .model_io import load_model

        return load_model(cls, path, map_location)

    def set_fitted_state(
        self,
        method,
        prep: Preprocessor,
        train: TrainConfig,
        history: pd.DataFrame,
        n_features: int,
        feature_names,
        model_dir: str | None,
    ) -> None:
        """Every fitted attribute, from one place: ``fit`` and ``load`` both call it, so a
        loaded model has exactly the state of the one that was saved (``model_io`` restores a
        saved model through it)."""
        self.method_, self.preprocessor_, self.train_config_ = method, prep, train
        self.method_params_ = dict(method.config)
        self.history_ = history
        self.genes_ = list(prep.genes_)
        self.embedding_dim_ = int(method.encoder.out_dim)
        self.n_features_in_ = int(n_features)
        self.__dict__.pop("feature_names_in_", None)
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        self.model_dir_ = model_dir
