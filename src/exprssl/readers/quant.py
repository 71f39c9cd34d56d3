"""A directory of Salmon or kallisto quantifications, one subdirectory per sample (the layout
``salmon quant -o <dir>/<sample>`` and nf-core/rnaseq leave): each sample's estimated counts
(Salmon ``NumReads``, kallisto ``est_counts``) as one row, the subdirectory's name as its id.

Salmon's gene-level ``quant.genes.sf`` (written with ``-g``) is taken when every sample has one,
else the transcript-level ``quant.sf``, else kallisto's ``abundance.tsv``. Every sample must list
the same features in the same order, as one index gives. Subdirectories without the file (QC
reports, logs) are passed over, and named.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import DataFileError, NonNumericError
from . import register
from .base import Matrix, Reader, ReadRequest, check_file, one_line

log = logging.getLogger("exprssl")
# file name -> (id column, estimated-count column, what wrote it), in order of preference
QUANT_FILES = {
    "quant.genes.sf": ("Name", "NumReads", "Salmon (gene level)"),
    "quant.sf": ("Name", "NumReads", "Salmon"),
    "abundance.tsv": ("target_id", "est_counts", "kallisto"),
}


def _subdirectories(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


@register("quant")
class QuantDirectoryReader(Reader):
    """Salmon / kallisto output directories, recognised by their content (no suffix)."""

    directory = True

    @classmethod
    def sniff(cls, path: Path) -> bool:
        return path.is_dir() and any(
            (d / name).is_file() for d in _subdirectories(path) for name in QUANT_FILES
        )

    def read(self, path: Path, request: ReadRequest) -> Matrix:
        name, files = _sample_files(path)
        id_column, count_column, tool = QUANT_FILES[name]
        features, columns = None, []
        for file in files.values():
            table = _quantification(file, id_column, count_column, tool)
            if features is None:
                features = table.index
            elif not table.index.equals(features):
                first = next(iter(files.values()))
                raise DataFileError(
                    f"{file}: lists other features than {first} ({len(table)} vs "
                    f"{len(features)}, or another order); quantify every sample against one index"
                )
            columns.append(table.to_numpy(dtype=np.float64))
        X = np.column_stack(columns).T.astype(np.float32)
        obs = pd.DataFrame(index=pd.Index(list(files), dtype=object))
        adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(features, dtype=object)))
        return Matrix(adata, self.name)


def _sample_files(path: Path) -> tuple[str, dict[str, Path]]:
    """The quantification file every sample is read from, and each sample's file."""
    subdirectories = _subdirectories(path)
    for name in QUANT_FILES:
        files = {d.name: d / name for d in subdirectories if (d / name).exists()}
        if not files or (name == "quant.genes.sf" and len(files) < _count_salmon(subdirectories)):
            continue
        skipped = [d.name for d in subdirectories if d.name not in files]
        if skipped:
            log.info(
                "%s: %d subdirectories without %s passed over: %s",
                path,
                len(skipped),
                name,
                ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else ""),
            )
        return name, files
    raise DataFileError(
        f"{path}: no sample subdirectories holding {', '.join(QUANT_FILES)} (Salmon or kallisto "
        "output, one subdirectory per sample)"
    )


def _count_salmon(subdirectories: list[Path]) -> int:
    """Samples with a transcript-level quant.sf: gene level is taken only if all have it too."""
    return sum((d / "quant.sf").exists() or (d / "quant.genes.sf").exists() for d in subdirectories)


def _quantification(file: Path, id_column: str, count_column: str, tool: str) -> pd.Series:
    """One sample's estimated counts by feature id, or one line naming the file."""
    check_file(file)
    try:
        table = pd.read_csv(file, sep="\t", dtype={id_column: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as e:
        raise DataFileError(f"{file}: could not parse as {tool} output ({one_line(e)})") from None
    missing = [c for c in (id_column, count_column) if c not in table.columns]
    if missing:
        raise DataFileError(
            f"{file}: not {tool} output: no '{missing[0]}' column (columns: "
            f"{', '.join(map(str, table.columns[:6]))})"
        )
    raw = table.set_index(id_column)[count_column]
    values = pd.to_numeric(raw, errors="coerce")
    text = values.isna().to_numpy() & raw.notna().to_numpy()
    if text.any():
        raise NonNumericError(
            f"{file}: non-numeric value {raw[text].iloc[0]!r} in column '{count_column}' at "
            f"'{raw.index[text][0]}'"
        )
    return values
