"""GCT 1.2 (GTEx, GenePattern): '#1.2', a '<genes><TAB><samples>' line, then Name,
Description and one column per sample; genes in rows."""

from __future__ import annotations

import gzip
from pathlib import Path

from ..errors import DataFileError
from . import register
from .base import Matrix, Reader, ReadRequest
from .tables import frame_matrix
from .text import COMPRESSION_ERRORS, is_gzip, not_utf8, read_delimited, text_encoding, truncated


@register("gct", suffixes=(".gct",))
class GctReader(Reader):
    """GCT 1.2; the dimension line is checked against the table."""

    gzip = True

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        n_genes, n_samples = _dimensions(path)
        df = read_delimited(path, "gct", skip_lines=2)
        df = df.drop(columns=[c for c in df.columns if str(c).lower() == "description"])
        if df.shape != (n_genes, n_samples):
            raise DataFileError(
                f"{path}: the dimension line says {n_genes} genes x {n_samples} samples, the "
                f"table has {df.shape[0]} genes x {df.shape[1]} samples"
            )
        return frame_matrix(df.T, str(path), self.name)


def _dimensions(path: Path) -> tuple[int, int]:
    """The version line checked, and the dimension line's (genes, samples)."""
    encoding = text_encoding(path)
    try:
        with (gzip.open if is_gzip(path) else open)(path, "rt", encoding=encoding) as fh:
            version, dims_line = fh.readline().strip().lstrip("\ufeff"), fh.readline().strip()
    except COMPRESSION_ERRORS as e:
        raise truncated(path, e) from None
    except UnicodeDecodeError as e:
        raise not_utf8(path, e) from None
    if not version.startswith("#1."):
        raise DataFileError(
            f"{path}: not a GCT file (first line '{version[:20]}', expected '#1.2')"
        )
    if version != "#1.2":
        raise DataFileError(f"{path}: GCT version '{version[:20]}' is not supported, only '#1.2'")
    dims = dims_line.split()
    if len(dims) < 2 or not all(d.isdigit() for d in dims[:2]):
        raise DataFileError(
            f"{path}: line 2 should be the dimension line '<genes><TAB><samples>', "
            f"got '{dims_line[:40]}'"
        )
    return int(dims[0]), int(dims[1])
