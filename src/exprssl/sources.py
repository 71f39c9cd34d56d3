"""Where expression data enters: a user's input resolved once into an ``ExpressionSource``.

A path, a bundled dataset's name, an AnnData, a DataFrame, an array or an out-of-core store
becomes one object, in memory or streamed from disk, and preprocessing, pretraining and
embedding read that object instead of each asking again what the input is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from .preprocessing import Preprocessor, source_name
from .utils import seed_everything

STREAM_FIT_ROWS = 10_000  # rows of a streamed store the preprocessing is fit on


class ExpressionSource:
    """Expression profiles in memory (``data``: AnnData, DataFrame, array, sparse matrix) or
    streamed from disk (``store``: an ``exprssl.store.ExpressionStore``); ``given`` is what the
    user passed (a path is recorded as the source of embeddings)."""

    def __init__(self, *, data: Any = None, store: Any = None, given: Any = None):
        self.data, self.store = data, store
        self.given = given if given is not None else (store if store is not None else data)

    @classmethod
    def resolve(cls, X: Any, stream: bool | None = None, **load_options: Any) -> ExpressionSource:
        """``X`` as a source: a store (or an h5ad to stream, see ``exprssl.store.open_streamed``)
        streams; any other path or bundled-dataset name is loaded (``exprssl.io.load_data``, with
        ``load_options``); objects in memory are taken as they are.

        Parameters
        ----------
        X
            An AnnData, DataFrame, array, store, path or bundled dataset's name.
        stream
            Stream an h5ad path; None decides from its size.
        **load_options
            Passed to ``exprssl.io.load_data`` for a path that is loaded.

        Returns
        -------
        ExpressionSource
            ``X`` itself if it already is one.
        """
        from .store import ExpressionStore, open_streamed

        if isinstance(X, ExpressionSource):
            return X
        if isinstance(X, ExpressionStore):
            return cls(store=X)
        if not isinstance(X, (str, os.PathLike)):
            return cls(data=X)
        store = open_streamed(X, stream)
        if store is not None:
            return cls(store=store, given=X)
        from .io import load_data

        return cls(data=load_data(X, **load_options), given=X)

    # ------------------------------------------------------------------ what it holds
    @property
    def streamed(self) -> bool:
        return self.store is not None

    @property
    def is_anndata(self) -> bool:
        return hasattr(self.data, "obsm") and hasattr(self.data, "var_names")

    @property
    def n_samples(self) -> int:
        if self.streamed:
            return self.store.n_samples
        shape = getattr(self.data, "shape", None)
        return int(shape[0]) if shape is not None else len(np.asarray(self.data))

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_samples, self.features()[0]

    def features(self) -> tuple[int, list[str] | None]:
        """Number of input columns and their gene names (None for an array), reading no values."""
        if self.streamed:
            return len(self.store.genes), list(self.store.genes)
        data = self.data
        if self.is_anndata:
            return data.n_vars, [str(g) for g in data.var_names]
        if isinstance(data, pd.DataFrame):
            return data.shape[1], [str(g) for g in data.columns]
        shape = (
            data.shape if hasattr(data, "shape") else np.asarray(data).shape
        )  # arrays, sparse, lists
        return shape[1], None

    def describe(self) -> str:
        """'N samples x G genes', and whether they stream: what the CLI prints before training."""
        n_genes, _ = self.features()
        return f"{self.n_samples} samples x {n_genes} genes" + (
            " (streamed from disk)" if self.streamed else ""
        )

    def obs(self) -> pd.DataFrame:
        """Sample metadata for an embedding's AnnData: an AnnData's or store's obs, else ids."""
        if self.streamed:
            return self.store.obs.copy()
        if self.is_anndata:
            return self.data.obs.copy()
        index = self.data.index if isinstance(self.data, pd.DataFrame) else range(self.n_samples)
        return pd.DataFrame(index=pd.Index(index).astype(str))

    def provenance(self) -> str:
        """The source recorded with embeddings: the path given, else what the data says."""
        if isinstance(self.given, (str, os.PathLike)):
            return str(self.given)
        return str(self.store.source) if self.streamed else source_name(self.data)

    # ------------------------------------------------------------------ what reads it
    def fit_preprocessor(self, prep: Preprocessor, seed: int) -> Preprocessor:
        """``prep`` fitted on these samples (a streamed store: on a random sample of at most
        ``STREAM_FIT_ROWS`` of its rows); an already fitted one is used as it is."""
        if prep.__sklearn_is_fitted__():
            return prep
        if self.streamed:
            return prep.fit(
                self.store.rows(self.store.sample_rows(STREAM_FIT_ROWS, seed=seed)),
                genes=self.store.genes,
            )
        return prep.fit(self.data)

    def pretrain(
        self, build: Callable[[int], torch.nn.Module], prep: Preprocessor, cfg
    ) -> tuple[Any, list[dict]]:
        """``(method, history)``: the method built for the preprocessed width (after seeding,
        so weight init is part of the seeded run) and trained on these samples, streamed in
        bounded memory or from one preprocessed matrix."""
        from .training import train_method, train_streaming

        if self.streamed:
            seed_everything(cfg.seed)
            method = build(len(prep.genes_))
            return method, train_streaming(method, self.store, prep, cfg)
        Xp = prep.transform(self.data)
        seed_everything(cfg.seed)
        method = build(Xp.shape[1])
        return method, train_method(method, torch.from_numpy(Xp), cfg)

    def embed(
        self,
        embed_preprocessed: Callable[[np.ndarray], np.ndarray],
        prep: Preprocessor,
        dim: int,
        progress: Callable[[int, int], Any] | None = None,
    ) -> np.ndarray:
        """Embeddings of every sample; a store is read block by block, so only the embeddings are
        held in memory, and ``progress(done, total)`` is called after each block."""
        if not self.streamed:
            return embed_preprocessed(prep.transform(self.data))
        store = self.store
        prep.gene_coverage(store.genes, store.source)  # reported once, not per block
        Z = np.empty((store.n_samples, dim), dtype=np.float32)
        for r0, block in store.blocks():
            Z[r0 : r0 + len(block)] = embed_preprocessed(
                prep.transform(block, store.genes, report_coverage=False)
            )
            if progress:
                progress(r0 + len(block), store.n_samples)
        return Z
