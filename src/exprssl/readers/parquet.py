"""Parquet tables: the id column is the frame's index, or the first (or named) column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFileError, LabelColumnError, TruncatedFileError
from . import register
from .base import Matrix, Reader, ReadRequest, one_line
from .tables import drop_annotation_columns, frame_matrix, orient


def read_parquet(path: Path, what: str = "table") -> pd.DataFrame:
    """A parquet file as a frame with its column names as stored (pandas refuses duplicates)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read()
        names = table.column_names
        if len(set(names)) < len(names):  # make them unique for pandas, then put them back
            unique = [f"{n}\x1f{i}" for i, n in enumerate(names)]
            df = table.rename_columns(unique).to_pandas()
            df.columns = pd.Index([c.split("\x1f")[0] for c in df.columns], dtype=object)
        else:
            df = table.to_pandas()
    except (OSError, ValueError, TypeError, pa.ArrowException) as e:
        raise TruncatedFileError(
            f"{path}: not a readable parquet file, truncated or corrupt ({one_line(e)})"
        ) from None
    if df.shape[1] == 0:
        raise DataFileError(f"{path}: {what} has no data (no columns)")
    return df


@register("parquet", suffixes=(".parquet", ".pq"))
class ParquetReader(Reader):
    """A parquet table, oriented like a text table (``tables.orient``)."""

    sheets = True

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        df = read_parquet(path)
        if request.sample_id_column is not None or isinstance(df.index, pd.RangeIndex):
            col = request.sample_id_column or df.columns[0]
            found = int((df.columns == col).sum())
            if found != 1:
                raise LabelColumnError(
                    f"{path}: id column '{col}' "
                    f"{'appears more than once' if found else 'not found'}; columns: "
                    f"{', '.join(map(str, df.columns[:10]))}"
                )
            df = df.set_index(col)
        if df.shape[0] == 0 or df.shape[1] == 0:
            raise DataFileError(
                f"{path}: table has no data rows or no value columns ({df.shape[0]} x "
                f"{df.shape[1]})"
            )
        if df.index.hasnans:
            raise DataFileError(
                f"{path}: data row {int(np.flatnonzero(df.index.isna())[0]) + 1} has no id"
            )
        df.index = df.index.astype(str)
        df.columns = df.columns.astype(str)
        df = drop_annotation_columns(df, path)  # as for text tables
        df = orient(df, request.orientation, str(path), request.sheet_keys)
        return frame_matrix(df, str(path), self.name)

    def read_sheet(self, path: Path) -> pd.DataFrame:
        df = read_parquet(path, "sample sheet")
        if not isinstance(df.index, pd.RangeIndex):
            df = df.reset_index()
        if df.empty:
            raise DataFileError(f"{path}: sample sheet has no data rows")
        return df
