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
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone

from . import __version__
from .errors import (
    ConfigError,
    DataFileError,
    ExprsslError,
    ModelNotFoundError,
    NotFittedError,
    OutputPathError,
    TrainingDivergedError,
)
from .methods import build_method, check_method_params, get_method
from .outputs import artifact_kind, check_output, output_lock
from .preprocessing import OPTIONS as PREPROCESSING_OPTIONS
from .preprocessing import Preprocessor, check_ignored_y, expression_input
from .training import TrainConfig, train_method
from .utils import seed_everything
from .validation import (
    WEIGHTS_METHOD_KEY,
    check_finite_preprocessor,
    check_finite_state,
    check_model_memory,
    check_same_method,
)

log = logging.getLogger("exprssl")
FORMAT_VERSION = 1
MODEL_FILES = ("config.json", "preprocessor.json", "weights.pt")
STREAM_FIT_ROWS = 10_000  # rows of a streamed store the preprocessing is fit on
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


class ResolvedParams(NamedTuple):
    """What ``SSLModel.check_params`` returns: every option checked, nothing fitted yet."""

    method_params: dict[str, Any]  # the method's complete options, defaults filled in
    train: TrainConfig
    preprocessor: Preprocessor  # a copy: unfitted, or the caller's fitted one (used as it is)


def _resolve(data, stream: bool | None = None):
    """A path or bundled-dataset name as data: a store, or an h5ad to stream (see
    ``exprssl.store.open_streamed``), opens for streaming; anything else is loaded
    (``exprssl.io.load_data``: every supported format, or a bundled dataset by name)."""
    if not isinstance(data, (str, os.PathLike)):
        return data
    from .io import load_data
    from .store import open_streamed

    store = open_streamed(data, stream)
    return store if store is not None else load_data(data)


def _is_anndata(data) -> bool:
    return hasattr(data, "obsm") and hasattr(data, "var_names")


def _is_store(data) -> bool:
    from .store import ExpressionStore

    return isinstance(data, ExpressionStore)


def _input_features(data) -> tuple[int, list[str] | None]:
    """Number of input columns and their gene names (None for an array), without reading values."""
    if _is_anndata(data):
        return data.n_vars, [str(g) for g in data.var_names]
    if isinstance(data, pd.DataFrame):
        return data.shape[1], [str(g) for g in data.columns]
    shape = data.shape if hasattr(data, "shape") else np.asarray(data).shape  # arrays, sparse, lists
    return shape[1], None


def _n_samples(data) -> int | None:
    shape = getattr(data, "shape", None)  # arrays, frames, AnnData, stores; None for paths and lists
    return int(shape[0]) if shape is not None and len(shape) >= 1 else None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class SSLModel(TransformerMixin, BaseEstimator):
    """Self-supervised encoder for expression profiles.

    >>> m = SSLModel("scarf", epochs=20, method_params={"corruption_rate": 0.5})
    >>> m.fit(adata)                        # unlabeled; preprocessing is fit on these samples
    >>> Z = m.transform(adata2, key="X_scarf")   # embeddings, also in adata2.obsm["X_scarf"]
    >>> m.save("scarf_model"); m2 = SSLModel.load("scarf_model")

    Parameters: ``method`` (a registered name: scarf, byol, vime, barlow, mae), ``method_params``
    (the method's own options, e.g. ``corruption_rate``, ``temperature``, ``hidden_dims``),
    ``preprocessor`` (a ``Preprocessor``, a dict of its options, or None for the defaults; an
    unfitted one is fit on the training samples, a fitted one is used as it is, and the object
    you pass is never modified), and the training loop's options (``TrainConfig``: epochs,
    batch_size, lr, optimizer, ...). Method options passed as keywords (the API before
    ``method_params``) are a ConfigError that says where they go.

    Fitted attributes: ``method_`` (the torch module), ``preprocessor_`` (the fitted
    preprocessing), ``method_params_``, ``train_config_``, ``history_`` (per-epoch losses and
    monitors), ``genes_`` (the encoder's input genes), ``embedding_dim_``, ``n_features_in_``,
    ``feature_names_in_`` (for inputs with gene names), ``model_dir_`` (where it was last saved or
    loaded from, else None).
    """

    def __init__(self, method: str = "scarf", *, method_params: Mapping[str, Any] | None = None,
                 preprocessor: Preprocessor | Mapping[str, Any] | None = None,
                 epochs: int = 50, batch_size: int = 256, optimizer: str | None = None,
                 lr: float | None = None, weight_decay: float | None = None, val_fraction: float = 0.1,
                 patience: int = 10, seed: int = 0, accelerator: str = "auto", devices: Any = "auto",
                 num_nodes: int = 1, strategy: str = "auto", precision: str | None = None,
                 num_workers: int = 0, progress: bool = True, log_dir: str | None = None,
                 **misplaced: Any):
        if misplaced:  # scikit-learn forbids **kwargs as parameters; this only explains the error
            raise ConfigError(
                f"SSLModel got unknown keyword(s) {', '.join(sorted(misplaced))}: options of the method go "
                f"in method_params, e.g. SSLModel({method!r}, method_params={misplaced!r}); SSLModel's own "
                f"keywords are {', '.join(self._get_param_names())}")
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
            raise ConfigError(f"method_params must be a dict of the options of method '{self.method}', "
                              f"got {self.method_params!r}")
        method_params = check_method_params(self.method, copy.deepcopy(dict(self.method_params or {})))
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
        raise ConfigError(f"preprocessor must be an exprssl.Preprocessor, a dict of its options "
                          f"({', '.join(PREPROCESSING_OPTIONS)}) or None, got {p!r}")

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
            raise NotFittedError("this SSLModel is not fitted yet: call fit(X) or SSLModel.load(path)")

    def fit(self, X, y=None, *, stream: bool | None = None) -> SSLModel:
        """Pretrain on the samples of ``X`` (``y`` and labels, if any, are ignored).

        ``X`` is an AnnData, a pandas DataFrame (columns = genes, index = samples), an array, a
        path or a bundled dataset's name, or an out-of-core store (a path written by
        ``exprssl convert``, or an ``exprssl.store.ExpressionStore``): a store is streamed in
        bounded memory, and the preprocessing is fit on a random sample of at most 10,000 of its
        rows. An h5ad path streams the same way with ``stream=True``, or by default when it
        would not fit comfortably in memory.
        """
        check_ignored_y(y, _n_samples(X), "SSLModel.fit")
        params = self.check_params()
        data = _resolve(X, stream)
        prep, train = params.preprocessor, params.train
        if _is_store(data):
            from .training import train_streaming

            if not prep.__sklearn_is_fitted__():
                prep.fit(data.rows(data.sample_rows(STREAM_FIT_ROWS, seed=train.seed)), genes=data.genes)
            check_model_memory(self.method, len(prep.genes_), params.method_params)
            seed_everything(train.seed)  # weight init is part of the seeded run
            method = build_method(self.method, len(prep.genes_), **params.method_params)
            history = train_streaming(method, data, prep, train)
            n_features, names = len(data.genes), list(data.genes)
        else:
            if not prep.__sklearn_is_fitted__():
                prep.fit(data)
            Xp = prep.transform(data)
            check_model_memory(self.method, Xp.shape[1], params.method_params)
            seed_everything(train.seed)
            method = build_method(self.method, Xp.shape[1], **params.method_params)
            history = train_method(method, torch.from_numpy(Xp), train)
            n_features, names = _input_features(data)
        self.method_, self.preprocessor_, self.train_config_ = method, prep, train
        self.method_params_ = dict(method.config)
        self.history_ = pd.DataFrame.from_records(history)
        self.genes_ = list(prep.genes_)
        self.embedding_dim_ = int(method.encoder.out_dim)
        self.n_features_in_ = int(n_features)
        self.__dict__.pop("feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.model_dir_ = None
        return self

    # ----------------------------------------------------------- embedding
    def embed_preprocessed(self, X: np.ndarray | torch.Tensor, batch_size: int = 2048) -> np.ndarray:
        """Embeddings of rows already transformed by ``self.preprocessor_``."""
        self._check_fitted()
        enc = self.method_.encoder
        was_training = enc.training
        enc.eval()
        device = next(enc.parameters()).device
        X = torch.as_tensor(X, dtype=torch.float32)
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                out.append(self.method_.embed(X[start:start + batch_size].to(device)).float().cpu())
        enc.train(was_training)
        if not out:
            return np.zeros((0, self.embedding_dim_), dtype=np.float32)
        return torch.cat(out).numpy()

    def transform(self, X, *, key: str | None = None, return_anndata: bool = False,
                  stream: bool | None = None, progress: Callable[[int, int], Any] | None = None):
        """Embed ``X`` (genes aligned by name): a float32 array (n_samples, embedding_dim_).

        ``X`` is anything ``fit`` takes. With an AnnData and ``key``, the embeddings are also
        stored in ``X.obsm[key]``. With ``return_anndata=True`` a new AnnData is returned
        instead, and ``X`` is left alone: the input's ``obs`` (sample ids for a DataFrame or an
        array), the embeddings in ``obsm[key or "X_<method>"]``, and ``uns["exprssl"]`` with the
        model directory, method, source and number of model genes. A store is read block by
        block so that only the embeddings are held in memory; ``progress(done, total)`` is
        called after each block. ``stream`` as in ``fit``.
        """
        self._check_fitted()
        return self._transform(_resolve(X, stream), X, key=key, return_anndata=return_anndata, progress=progress)

    def _transform(self, data, given, *, key, return_anndata, progress=None):
        """``transform`` of already resolved ``data``; ``given`` is what the caller passed (its
        path, when it was one, is the embeddings' recorded source)."""
        if key is not None and not return_anndata and not _is_anndata(data):
            raise ConfigError(f"key={key!r} stores the embeddings in an AnnData's obsm, and "
                              f"{'a store' if _is_store(data) else type(data).__name__} has none: use the "
                              "returned array, or return_anndata=True")
        if _is_store(data):
            Z = self._embed_store(data, progress)
        else:
            Z = self.embed_preprocessed(self.preprocessor_.transform(data))
        if not return_anndata:
            if key is not None:
                data.obsm[key] = Z
            return Z
        source = str(given) if isinstance(given, (str, os.PathLike)) else None
        return self._embedding_anndata(data, Z, key, source)

    def _embed_store(self, store, progress) -> np.ndarray:
        self.preprocessor_.gene_coverage(store.genes, store.source)  # reported once, not per block
        Z = np.empty((store.n_samples, self.embedding_dim_), dtype=np.float32)
        for r0, block in store.blocks():
            Xp = self.preprocessor_.transform(block, store.genes, report_coverage=False)
            Z[r0:r0 + len(block)] = self.embed_preprocessed(Xp)
            if progress:
                progress(r0 + len(block), store.n_samples)
        return Z

    def _embedding_anndata(self, data, Z: np.ndarray, key: str | None, source: str | None):
        """The AnnData ``exprssl embed`` writes: sample metadata, embeddings, provenance."""
        import anndata as ad

        if _is_store(data) or _is_anndata(data):
            obs = data.obs.copy()
        else:
            index = data.index if isinstance(data, pd.DataFrame) else range(Z.shape[0])
            obs = pd.DataFrame(index=pd.Index(index).astype(str))
        if source is None:
            source = expression_input(data)[2] if not _is_store(data) else str(data.source)
        result = ad.AnnData(obs=obs, obsm={key or f"X_{self.method}": Z})
        result.uns["exprssl"] = {"model": self.model_dir_ or "(not saved)", "method": self.method,
                                 "source": source, "n_model_genes": len(self.genes_)}
        return result

    def fit_transform(self, X, y=None, *, key: str | None = None, return_anndata: bool = False,
                      stream: bool | None = None):
        """``fit`` then ``transform`` the same samples (read once); ``y`` is ignored, so a
        Pipeline's labels are never taken for an obsm key."""
        data = _resolve(X, stream)
        self.fit(data, y)
        return self._transform(data, X, key=key, return_anndata=return_anndata)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the embedding dimensions: ``<method>0``, ``<method>1``, ..."""
        self._check_fitted()
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError(f"input_features has {len(input_features)} names, but SSLModel was fitted "
                             f"on {self.n_features_in_} features")
        return np.asarray([f"{self.method}{i}" for i in range(self.embedding_dim_)], dtype=object)

    # ---------------------------------------------------------- persistence
    def config(self) -> dict[str, Any]:
        """The content of a saved model's ``config.json``."""
        self._check_fitted()
        return {"format_version": FORMAT_VERSION, "exprssl_version": __version__,
                "method": self.method, "method_config": dict(self.method_params_),
                "train_config": dataclasses.asdict(self.train_config_), "n_features": len(self.genes_),
                "embedding_dim": self.embedding_dim_}

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model directory: it appears whole or not at all.

        Refused with a one-line OutputPathError, before anything is written: a path that exists
        and is not an exprssl model directory (exprssl never deletes or hides what it did not
        write), an existing model unless ``overwrite``, a path another save is writing right now.
        Non-finite weights (a diverged run) are refused with a TrainingDivergedError.
        """
        self._check_fitted()
        path = Path(path)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_rank() != 0:  # under DDP every rank holds the same weights
                return path
        self._check_finite_weights(path)
        check_output(path, "model", overwrite=overwrite)  # refuse before touching anything there
        with output_lock(path):
            check_output(path, "model", overwrite=overwrite)  # and again: a save may just have ended
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            try:
                self._write_files(tmp)
                _move_into_place(tmp, path)
            except OSError as e:
                raise OutputPathError(f"{path}: could not write the model ({e.strerror or e})") from None
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        self.model_dir_ = str(path)
        return path

    def _check_finite_weights(self, path: Path) -> None:
        bad = [name for name, t in self.method_.state_dict().items()
               if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise TrainingDivergedError(f"{path}: not saved: weights {bad[0]}{more} are not finite (training "
                                        "diverged; try a lower lr)")

    def _write_files(self, directory: Path) -> None:
        (directory / "config.json").write_text(json.dumps(self.config(), indent=2, default=str))
        self.preprocessor_.save(directory / "preprocessor.json")
        (directory / "genes.txt").write_text("\n".join(self.genes_) + "\n")
        state = self.method_.state_dict()
        state[WEIGHTS_METHOD_KEY] = self.method  # load refuses these weights under another method's config
        torch.save(state, directory / "weights.pt")
        self.history_.to_csv(directory / "history.csv", index=False)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> SSLModel:
        """A model saved by ``save``. A missing, damaged or inconsistent model directory is a
        one-line error naming the file at fault; weights are read with ``weights_only=True``, so
        a crafted ``weights.pt`` cannot run code."""
        path = Path(path)
        if not path.is_dir():
            raise ModelNotFoundError(f"{path}: no such model directory (expected the --out of 'exprssl pretrain')")
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise ModelNotFoundError(f"{path}: not an exprssl model directory (missing {', '.join(missing)})")
        cfg = _read_config(path / "config.json")
        prep = Preprocessor.load(path / "preprocessor.json")
        if not prep.__sklearn_is_fitted__():
            raise DataFileError(f"{path / 'preprocessor.json'}: the preprocessing was never fitted")
        check_finite_preprocessor(prep, str(path / "preprocessor.json"))
        method = _read_weights(path / "weights.pt", path / "config.json", cfg, map_location)
        if len(prep.genes_) != cfg["n_features"]:
            raise DataFileError(f"{path / 'preprocessor.json'}: {len(prep.genes_)} genes, but config.json and "
                                f"weights.pt are for {cfg['n_features']}; the files come from different models")
        train = {k: v for k, v in cfg["train_config"].items() if k in _TRAIN_FIELDS}
        try:
            model = cls(cfg["method"], method_params=dict(method.config), preprocessor=clone(prep), **train)
            train_config = TrainConfig(**train)
        except (ExprsslError, TypeError) as e:
            raise DataFileError(f"{path / 'config.json'}: invalid train_config ({_first_line(e)})") from None
        model.method_, model.preprocessor_, model.train_config_ = method, prep, train_config
        model.method_params_ = dict(method.config)
        model.history_ = _read_history(path / "history.csv")
        model.genes_ = list(prep.genes_)
        model.embedding_dim_ = int(method.encoder.out_dim)
        model.n_features_in_ = prep.n_features_in_
        if hasattr(prep, "feature_names_in_"):
            model.feature_names_in_ = prep.feature_names_in_
        model.model_dir_ = str(path)
        return model


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished directory ``tmp`` to ``path``. An existing model there (``save`` has
    checked that it is one, and that replacing it is allowed) is moved aside under a unique name
    first, and restored if the rename fails."""
    if artifact_kind(path) != "model":
        os.replace(tmp, path)  # nothing there, or an empty directory (rename replaces it)
        return
    aside = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:12]}")
    os.replace(path, aside)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _read_config(file: Path) -> dict[str, Any]:
    """config.json, checked: a JSON object with a known method and a positive n_features."""
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFileError(f"{file}: not valid JSON ({_first_line(e)})") from None
    if not isinstance(cfg, dict):
        raise DataFileError(f"{file}: expected a JSON object of model settings, got {type(cfg).__name__}")
    version = cfg.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataFileError(f"{file}: model format version {version!r} is not one this exprssl reads "
                            f"(up to {FORMAT_VERSION}); upgrade exprssl or pretrain again")
    if not isinstance(cfg.get("method"), str):
        raise DataFileError(f"{file}: no 'method' name")
    try:
        get_method(cfg["method"])
    except ConfigError as e:
        raise DataFileError(f"{file}: {e}") from None
    n = cfg.get("n_features")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataFileError(f"{file}: 'n_features' (the number of genes the encoder takes) must be a positive "
                            f"integer, got {n!r}")
    for key in ("method_config", "train_config"):
        cfg[key] = {} if cfg.get(key) is None else cfg[key]
        if not isinstance(cfg[key], dict):
            raise DataFileError(f"{file}: '{key}' must be a JSON object, got {type(cfg[key]).__name__}")
    return cfg


def _read_weights(file: Path, config_file: Path, cfg: dict[str, Any], map_location: str) -> torch.nn.Module:
    """The method described by config.json with the weights of ``file``; a damaged file or one
    from another model is a one-line DataFileError."""
    try:
        method = build_method(cfg["method"], cfg["n_features"], **cfg["method_config"])
    except ExprsslError as e:
        raise DataFileError(f"{config_file}: {e}") from None
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001  a damaged file fails in many ways inside torch; weights_only
        # refuses anything but tensors, so a crafted pickle is rejected here without running code
        raise DataFileError(f"{file}: not readable model weights (damaged, or not written by exprssl: "
                            f"{_first_line(e)})") from None
    if not isinstance(state, dict):
        raise DataFileError(f"{file}: not readable model weights (a {type(state).__name__}, not a state dict)")
    check_same_method(cfg["method"], state.pop(WEIGHTS_METHOD_KEY, None), str(file))
    check_finite_state(state, str(file))
    expected = method.state_dict()
    for name, tensor in expected.items():
        got = state.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            found = "missing" if got is None else f"of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) \
                else f"a {type(got).__name__}"
            raise DataFileError(f"{file}: does not match {config_file.name} (method '{cfg['method']}', "
                                f"n_features {cfg['n_features']}): {name} is {found}, expected shape "
                                f"{tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise DataFileError(f"{file}: does not match {config_file.name} (method '{cfg['method']}'): "
                            f"unexpected tensors {', '.join(map(str, extra[:3]))}")
    method.load_state_dict(state)
    method.eval()
    return method


def _read_history(file: Path) -> pd.DataFrame:
    """The per-epoch history; it only informs, so a damaged file is a warning, not an error."""
    if not file.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        log.warning("%s: unreadable training history, ignored (%s)", file, _first_line(e))
        return pd.DataFrame()
