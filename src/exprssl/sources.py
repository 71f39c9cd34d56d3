"""Where expression data enters: what the user passed, inspected once, as an ``ExpressionSource``.

A path, a bundled dataset's name, an AnnData, a DataFrame, an array (numpy or scipy sparse) or an
out-of-core store becomes one object, in memory or streamed from disk. This is the only code
that asks what an input is: preprocessing, the model card, ``SSLModel`` and the benchmark read a
source instead of each testing the input again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .errors import ConfigError

STREAM_FIT_ROWS = 10_000  # rows of a streamed store the preprocessing is fit on


def check_layer(source: ExpressionSource, layer: str) -> str:
    """``layer`` if ``source`` (an AnnData) has it; otherwise one line naming the layers it has."""
    if source.kind != "anndata":
        what = "a store" if source.kind == "store" else f"a {type(source.data).__name__}"
        raise ConfigError(f"layer '{layer}' names an AnnData layer, and {what} has none")
    layers = list(source.data.layers.keys())
    if layer not in layers:
        raise ConfigError(
            f"{source.given_path or source.name}: no layer '{layer}' "
            f"(its layers: {', '.join(map(str, layers)) or 'none'})"
        )
    return layer


class ExpressionSource:
    """Expression profiles in memory (``data``: AnnData, DataFrame, array, sparse matrix) or
    streamed from disk (``store``: an ``exprssl.store.ExpressionStore``); ``given`` is what the
    user passed (a path is recorded as the source of embeddings); ``layer`` names the AnnData
    layer read instead of ``X`` (scanpy keeps raw counts in ``layers["counts"]``)."""

    def __init__(
        self, *, data: Any = None, store: Any = None, given: Any = None, layer: str | None = None
    ):
        self.data, self.store = data, store
        self.given = given if given is not None else (store if store is not None else data)
        if store is not None:
            self.kind = "store"
        elif isinstance(data, ad.AnnData):  # views of an AnnData included
            self.kind = "anndata"
        elif isinstance(data, pd.DataFrame):
            self.kind = "frame"
        else:  # numpy or scipy sparse matrices, lists, array-likes
            self.kind = "array"
        self.layer = None if layer is None else check_layer(self, layer)

    # ------------------------------------------------------------------ resolvers
    @classmethod
    def resolve(
        cls, X: Any, stream: bool | None = None, layer: str | None = None, **load_options: Any
    ) -> ExpressionSource:
        """``X`` as a source: a store (or an h5ad to stream, see ``exprssl.store.open_streamed``)
        streams; any other path or bundled-dataset name is loaded (``exprssl.io.load_dataset``,
        with ``load_options``); objects in memory are taken as they are.

        Parameters
        ----------
        X
            An AnnData, DataFrame, array, store, path or bundled dataset's name.
        stream
            Stream an h5ad path; None decides from its size.
        layer
            The AnnData layer holding the values (``X`` when None); a path with a layer is read
            whole (streaming reads ``X``).
        **load_options
            Passed to ``exprssl.io.load_dataset`` for a path that is loaded.

        Returns
        -------
        ExpressionSource
            ``X`` itself if it already is one.
        """
        from .store import ExpressionStore, open_streamed

        if isinstance(X, ExpressionSource):
            return X
        if isinstance(X, ExpressionStore):
            return cls(store=X, layer=layer)
        if isinstance(X, (str, os.PathLike)):
            if layer is not None and stream:
                raise ConfigError(
                    f"{X}: streaming reads an h5ad's X only; drop stream to read layer "
                    f"'{layer}' in memory"
                )
            store = open_streamed(X, False if layer is not None else stream)
            if store is not None:
                return cls(store=store, given=X, layer=layer)
            return cls.load(X, layer=layer, **load_options)
        return cls(data=X, layer=layer)

    @classmethod
    def load(cls, X: Any, layer: str | None = None, **load_options: Any) -> ExpressionSource:
        """``X`` in memory: a path or a bundled dataset's name read whole
        (``exprssl.io.load_dataset`` with ``load_options``: a sample sheet, the orientation),
        anything else taken as it is. What the benchmark's cohort and ``exprssl info`` read:
        with a ``layer``, the source's AnnData holds that layer as its ``X``."""
        if isinstance(X, ExpressionSource):
            return X
        if isinstance(X, (str, os.PathLike)):
            from .io import data_file, load_dataset

            if data_file(X) is not None:  # a file: its reader reads the layer as X
                return cls(data=load_dataset(X, layer=layer, **load_options), given=X)
            return cls(data=load_dataset(X, **load_options), given=X, layer=layer).layer_as_x()
        return cls(data=X, layer=layer).layer_as_x()

    def layer_as_x(self) -> ExpressionSource:
        """This source with its layer as an AnnData's ``X`` (the arrays shared, not copied): for
        code that reads ``.data.X``. The caller's AnnData is left as it is."""
        if self.layer is None:
            return self
        a = self.data
        data = ad.AnnData(X=a.layers[self.layer], obs=a.obs, var=a.var, uns=dict(a.uns))
        return ExpressionSource(data=data, given=self.given)

    @classmethod
    def in_memory(cls, X: Any) -> ExpressionSource:
        """``X`` taken as it is, no file read: what ``Preprocessor`` fits and transforms."""
        return X if isinstance(X, ExpressionSource) else cls(data=X)

    @staticmethod
    def count_samples(X: Any) -> int | None:
        """The number of samples ``X`` holds, from its shape, reading nothing: None for a path, a
        bundled dataset's name or a list."""
        shape = getattr(X, "shape", None)
        return int(shape[0]) if shape is not None and len(shape) >= 1 else None

    # ------------------------------------------------------------------ what it holds
    @property
    def streamed(self) -> bool:
        return self.kind == "store"

    @property
    def is_anndata(self) -> bool:
        return self.kind == "anndata"

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
        if self.kind == "anndata":
            return data.n_vars, [str(g) for g in data.var_names]
        if self.kind == "frame":
            return data.shape[1], [str(g) for g in data.columns]
        shape = (
            data.shape if hasattr(data, "shape") else np.asarray(data).shape
        )  # arrays, sparse, lists
        return shape[1], None

    @property
    def name(self) -> str:
        """What messages call in-memory data, without touching its matrix: an AnnData's
        ``uns["exprssl"]["source"]`` (else "AnnData"), "DataFrame" or "data"."""
        if self.kind == "anndata":
            uns = getattr(self.data, "uns", {}).get("exprssl", {})
            return str(uns.get("source", "AnnData")) if isinstance(uns, Mapping) else "AnnData"
        return "DataFrame" if self.kind == "frame" else "data"

    @property
    def given_path(self) -> str | None:
        """The path the user gave, if a path was given."""
        return str(self.given) if isinstance(self.given, (str, os.PathLike)) else None

    @property
    def recorded_source(self) -> str | None:
        """Where an AnnData says it was read from (``uns["exprssl"]["source"]``), if it says."""
        uns = getattr(self.data, "uns", None) if self.kind == "anndata" else None
        record = uns.get("exprssl") if uns is not None else None
        return str(record["source"]) if isinstance(record, dict) and record.get("source") else None

    def parts(self) -> tuple[Any, Any, Any]:
        """``(matrix, gene names, sample ids)`` as held: a sparse matrix stays sparse, a
        DataFrame's values as an array; names and ids are None where the data has none."""
        if self.streamed:
            raise ConfigError(
                f"{self.store.source}: a streamed store has no matrix in memory; read its rows "
                "(ExpressionStore.rows) or load the file"
            )
        data = self.data
        if self.kind == "anndata":
            X = data.X if self.layer is None else data.layers[self.layer]
            return X, data.var_names, data.obs_names
        if self.kind == "frame":
            return data.to_numpy(), data.columns, data.index
        return data, None, None

    def matrix(self, genes=None) -> tuple[Any, list[str] | None, str, Any]:
        """``(matrix, gene names, name, sample ids)``: the matrix dense (bulk expression is dense
        anyway; lists as arrays), gene names as strings (``genes`` names an array's columns;
        None: they can only be matched by position), the name messages use, and the sample ids
        (or None)."""
        matrix, names, samples = self.parts()
        if hasattr(matrix, "toarray"):  # scipy sparse
            matrix = matrix.toarray()
        elif not hasattr(matrix, "shape"):  # lists, array-likes
            matrix = np.asarray(matrix)
        if genes is not None:
            names = genes
        return matrix, None if names is None else [str(g) for g in names], self.name, samples

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
        if self.kind == "anndata":
            return self.data.obs.copy()
        index = self.data.index if self.kind == "frame" else range(self.n_samples)
        return pd.DataFrame(index=pd.Index(index).astype(str))

    def provenance(self) -> str:
        """The source recorded with embeddings: the path given, else what the data says."""
        if self.given_path is not None:
            return self.given_path
        return str(self.store.source) if self.streamed else self.name

    # ------------------------------------------------------------------ what reads it
    def fit_preprocessor(self, prep, seed: int):
        """``prep`` (an ``exprssl.Preprocessor``) fitted on these samples (a streamed store: on
        a random sample of at most ``STREAM_FIT_ROWS`` of its rows); an already fitted one is
        used as it is."""
        if prep.__sklearn_is_fitted__():
            return prep
        if self.streamed:
            return prep.fit(
                self.store.rows(self.store.sample_rows(STREAM_FIT_ROWS, seed=seed)),
                genes=self.store.genes,
            )
        return prep.fit(self)

    def embed(
        self,
        embed_preprocessed: Callable[[np.ndarray], np.ndarray],
        prep,
        dim: int,
        progress: Callable[[int, int], Any] | None = None,
    ) -> np.ndarray:
        """Embeddings of every sample; a store is read block by block, so only the embeddings are
        held in memory, and ``progress(done, total)`` is called after each block."""
        if not self.streamed:
            return embed_preprocessed(prep.transform(self))
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
