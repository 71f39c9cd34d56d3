"""`SSLModel`: the scikit-learn / scverse style front door to pretraining and embedding.

A fitted model is self-contained: weights, the method's config, the gene list and the fitted
preprocessing travel together, so embedding data from another source aligns genes by name and
applies exactly the transformation the encoder was trained on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from .errors import ConfigError, ModelNotFoundError
from .methods import build_method, get_method
from .preprocessing import Preprocessor
from .training import TrainConfig, train_method
from .utils import seed_everything

_TRAIN_KEYS = set(TrainConfig.__dataclass_fields__)
FORMAT_VERSION = 1


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


class SSLModel:
    """Self-supervised encoder for expression profiles.

    >>> m = SSLModel("scarf", epochs=20)
    >>> m.fit(adata)                        # unlabeled; preprocessing is fit on these samples
    >>> Z = m.transform(adata2, key="X_scarf")   # embeddings, also in adata2.obsm["X_scarf"]
    >>> m.save("scarf_model"); m2 = SSLModel.load("scarf_model")

    Keyword options are split between the training loop (``TrainConfig``: epochs, batch_size,
    lr, optimizer, weight_decay, val_fraction, patience, seed, devices, ...) and the method's own
    hyperparameters (e.g. ``corruption_rate``, ``temperature``, ``hidden_dims``).
    """

    def __init__(self, method: str = "scarf", *, preprocessor: Preprocessor | dict | None = None,
                 **options: Any):
        self.method_name = method
        self.method_cls = get_method(method)  # fails fast on an unknown name
        train_opts = {k: v for k, v in options.items() if k in _TRAIN_KEYS}
        self.method_config = {k: v for k, v in options.items() if k not in _TRAIN_KEYS}
        unknown = set(self.method_config) - set(self.method_cls.defaults)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for method '{method}': {', '.join(sorted(unknown))}; accepted: "
                f"{', '.join(sorted(_TRAIN_KEYS | set(self.method_cls.defaults)))}")
        self.train_config = TrainConfig(**train_opts)
        self.train_config.validate()
        if preprocessor is None:
            preprocessor = Preprocessor()
        elif isinstance(preprocessor, dict):
            preprocessor = Preprocessor(**preprocessor)
        self.preprocessor: Preprocessor = preprocessor
        self.method = None
        self.history = pd.DataFrame(columns=["epoch", "train_loss", "val_loss", "emb_std", "eff_rank"])

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        return self.method is not None

    @property
    def genes(self) -> list[str]:
        """Features the encoder consumes (after the preprocessor's gene selection)."""
        return list(self.preprocessor.genes_)

    @property
    def embedding_dim(self) -> int:
        self._check_fitted()
        return int(self.method.encoder.out_dim)

    def fit(self, adata, y=None, *, stream: bool | None = None) -> SSLModel:
        """Pretrain on the samples of ``adata`` (labels, if any, are ignored).

        ``adata`` may also be a path or a bundled dataset's name, or an out-of-core store (a path
        written by ``exprssl convert``, or an ``exprssl.store.ExpressionStore``): a store is
        streamed in bounded memory, and the preprocessing is fit on a random sample of at most
        10,000 of its rows. An h5ad path streams the same way with ``stream=True``, or by
        default when it would not fit comfortably in memory.
        """
        from .store import ExpressionStore

        adata = _resolve(adata, stream)
        if isinstance(adata, ExpressionStore):
            return self._fit_store(adata)
        if not self.preprocessor.is_fitted:
            self.preprocessor.fit(adata)
        X = torch.from_numpy(np.ascontiguousarray(self.preprocessor.transform(adata), dtype=np.float32))
        seed_everything(self.train_config.seed)  # weight init is part of the seeded run
        self.method = build_method(self.method_name, X.shape[1], **self.method_config)
        history = train_method(self.method, X, self.train_config)
        self.history = pd.DataFrame(history, columns=self.history.columns)
        return self

    def _fit_store(self, store) -> SSLModel:
        from .training import train_streaming

        if not self.preprocessor.is_fitted:
            idx = store.sample_rows(10_000, seed=self.train_config.seed)
            self.preprocessor.fit(store.rows(idx), store.genes)
        seed_everything(self.train_config.seed)
        self.method = build_method(self.method_name, len(self.preprocessor.genes_), **self.method_config)
        history = train_streaming(self.method, store, self.preprocessor, self.train_config)
        self.history = pd.DataFrame(history, columns=self.history.columns)
        return self

    # ----------------------------------------------------------------- embedding
    def embed_preprocessed(self, X: np.ndarray | torch.Tensor, batch_size: int = 2048) -> np.ndarray:
        """Embeddings of rows already transformed by ``self.preprocessor``."""
        self._check_fitted()
        enc = self.method.encoder
        was_training = enc.training
        enc.eval()
        device = next(enc.parameters()).device
        X = torch.as_tensor(X, dtype=torch.float32)
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                out.append(self.method.embed(X[start:start + batch_size].to(device)).float().cpu())
        enc.train(was_training)
        if not out:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return torch.cat(out).numpy()

    def transform(self, adata, key: str | None = None, progress=None, *, stream: bool | None = None) -> np.ndarray:
        """Embed ``adata`` (genes aligned by name); with ``key``, also store in ``adata.obsm[key]``.

        ``adata`` may also be a path or a bundled dataset's name, or a store (a path written by
        ``exprssl convert``, or an ``ExpressionStore``), which is read block by block so that only
        the embeddings are held in memory; ``progress(done, total)`` is called after each block.
        ``stream`` as in ``fit``.
        """
        from .store import ExpressionStore

        self._check_fitted()
        adata = _resolve(adata, stream)
        if isinstance(adata, ExpressionStore):
            if key is not None:
                raise ConfigError("key= writes into adata.obsm; a store has none (use the returned array)")
            Z = np.empty((adata.n_samples, self.embedding_dim), dtype=np.float32)
            for r0, block in adata.blocks():
                Z[r0:r0 + len(block)] = self.embed_preprocessed(self.preprocessor.transform(block, adata.genes))
                if progress:
                    progress(r0 + len(block), adata.n_samples)
            return Z
        Z = self.embed_preprocessed(self.preprocessor.transform(adata))
        if key is not None:
            adata.obsm[key] = Z
        return Z

    def fit_transform(self, adata, key: str | None = None) -> np.ndarray:
        return self.fit(adata).transform(adata, key=key)

    def _check_fitted(self) -> None:
        if self.method is None:
            raise ConfigError("this SSLModel is not fitted yet: call fit(adata) or SSLModel.load(path)")

    # ------------------------------------------------------------- persistence
    def config(self) -> dict:
        train = self.train_config.to_dict()
        return {"format_version": FORMAT_VERSION, "exprssl_version": __version__,
                "method": self.method_name, "method_config": dict(self.method.config),
                "train_config": train, "n_features": len(self.genes),
                "embedding_dim": self.embedding_dim}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model directory atomically: an existing model at ``path`` is replaced whole or not at all."""
        self._check_fitted()
        path = Path(path)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_rank() != 0:  # under DDP every rank holds the same weights
                return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            (tmp / "config.json").write_text(json.dumps(self.config(), indent=2, default=str))
            self.preprocessor.save(tmp / "preprocessor.json")
            (tmp / "genes.txt").write_text("\n".join(self.genes) + "\n")
            torch.save(self.method.state_dict(), tmp / "weights.pt")
            self.history.to_csv(tmp / "history.csv", index=False)
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str = "cpu") -> SSLModel:
        path = Path(path)
        if not path.is_dir():
            raise ModelNotFoundError(f"{path}: no such model directory (expected the --out of 'exprssl pretrain')")
        missing = [f for f in ("config.json", "preprocessor.json", "weights.pt") if not (path / f).exists()]
        if missing:
            raise ModelNotFoundError(f"{path}: not an exprssl model directory (missing {', '.join(missing)})")
        cfg = json.loads((path / "config.json").read_text())
        train = {k: v for k, v in cfg.get("train_config", {}).items() if k in _TRAIN_KEYS}
        model = cls(cfg["method"], preprocessor=Preprocessor.load(path / "preprocessor.json"), **train)
        model.method_config = dict(cfg["method_config"])
        model.method = build_method(cfg["method"], cfg["n_features"], **model.method_config)
        state = torch.load(path / "weights.pt", map_location=map_location, weights_only=True)
        model.method.load_state_dict(state)
        model.method.eval()
        if (path / "history.csv").exists():
            model.history = pd.read_csv(path / "history.csv")
        return model

    def __repr__(self) -> str:
        state = f"fitted, {len(self.genes)} genes -> {self.embedding_dim}-d" if self.is_fitted else "not fitted"
        return f"SSLModel(method='{self.method_name}', {state})"
