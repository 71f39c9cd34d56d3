"""What tables share (delimited text, parquet, GCT): the orientation rule, featureCounts'
annotation columns, and the frame -> float32 matrix step that names the first bad cell.

Orientation (csv/tsv/parquet): ``orientation="samples_in_rows"`` or ``"genes_in_rows"``; the
default ``"auto"`` decides from the table's layout, a sample sheet, or the ids on each axis, and
only then takes the longer axis as genes (expression tables have far more genes than samples),
ties meaning samples in rows, logging a WARNING when the shape makes that a guess (see
``AUTO_MIN_GENES``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import DataFileError, InvalidValuesError, NonNumericError
from ..genes import ID_SYSTEM_NAMES, gene_axis_ids
from ..sample_ids import detect_sample_ids, id_keys
from ..validation import check_unique_samples
from .base import Matrix, duplicate_names_allowed

log = logging.getLogger("exprssl")
# orientation="auto" is a guess, and says so, unless the longer axis (taken as genes) has at least
# this many entries and is at least this many times the shorter one: 20k genes x 100 samples is
# clear, 60 x 30 or 1,500 x 1,200 is not
AUTO_MIN_GENES = 1000
AUTO_MIN_RATIO = 1.5


# annotation columns of count tables (featureCounts: Chr, Start, End, Strand, Length; GCT and
# others: Description, gene names): per-gene facts, not samples
ANNOTATION_COLUMNS = frozenset(
    {
        "chr",
        "chrom",
        "chromosome",
        "start",
        "end",
        "strand",
        "length",
        "description",
        "gene_name",
        "gene_symbol",
        "gene_type",
        "gene_biotype",
        "biotype",
    }
)
_ALIGNMENT_SUFFIX = re.compile(r"\.(?:bam|sam|cram)$", re.IGNORECASE)
_STAR_SUFFIX = re.compile(
    r"[._]?Aligned(?:\.sortedByCoord|\.toTranscriptome)?\.out$", re.IGNORECASE
)
_ALIGNER_SUFFIXES = re.compile(
    r"(?:[._](?:aligned|sorted|sortedbycoord|out|dedup|markdup|rmdup|filtered|"
    r"unique|uniq|primary|mapped|star|hisat2?|bowtie2?))+$",
    re.IGNORECASE,
)


def drop_annotation_columns(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Read featureCounts-style tables natively: annotation columns (Chr ... Length) dropped,
    samples named by their alignment file (``/data/S1.sorted.bam`` -> ``S1``)."""
    names = pd.Index(df.columns.astype(str))
    annotation = names.str.lower().isin(ANNOTATION_COLUMNS)
    if annotation.all() and len(names) > 1:
        raise DataFileError(
            f"{path}: only annotation columns ({', '.join(names[:6])}), no sample columns"
        )
    if annotation.any() and not annotation.all():
        log.info("%s: annotation columns dropped: %s", path, ", ".join(names[annotation]))
        df = df.loc[:, ~annotation]
        names = names[~annotation]
        df.attrs["genes_in_rows"] = True  # annotation columns describe the rows: genes
    bam = names.str.contains(_ALIGNMENT_SUFFIX)
    if bam.any():
        df.attrs["genes_in_rows"] = True
        base = [_bam_sample_name(n) if is_bam else n for n, is_bam in zip(names, bam, strict=True)]
        df = df.set_axis(pd.Index(base, dtype=object), axis=1)
        log.info(
            "%s: samples named by their alignment files (e.g. %s -> %s)",
            path,
            names[bam][0],
            base[int(np.flatnonzero(bam)[0])],
        )
    return df


def _bam_sample_name(path: str) -> str:
    """``/data/bam/S1Aligned.sortedByCoord.out.bam`` -> ``S1``: basename, alignment extension and
    common aligner suffixes dropped."""
    name = _ALIGNMENT_SUFFIX.sub("", path.replace("\\", "/").rsplit("/", 1)[-1])
    return _ALIGNER_SUFFIXES.sub("", _STAR_SUFFIX.sub("", name)) or name


def numeric_frame(df: pd.DataFrame, source: str) -> np.ndarray:
    """Frame -> float32, naming the first cell that is not a number: text, true/false (pandas
    reads whole columns of them as booleans, which would silently count as 1 and 0), or a number
    beyond float32's range (1e39 would become inf)."""
    flags = np.flatnonzero([pd.api.types.is_bool_dtype(t) for t in df.dtypes])
    if len(flags):
        c = int(flags[0])
        raise NonNumericError(
            f"{source}: true/false value '{str(df.iloc[0, c]).lower()}' at row '{df.index[0]}', "
            f"column '{df.columns[c]}'; expected numbers"
        )
    try:
        X64 = df.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        values = df.to_numpy(dtype=object)
        conv = pd.DataFrame(values).apply(pd.to_numeric, errors="coerce").to_numpy()
        bad = pd.isna(conv) & ~pd.isna(values)
        r, c = np.argwhere(bad)[0]
        raise NonNumericError(
            f"{source}: non-numeric value {values[r, c]!r} at row '{df.index[r]}', "
            f"column '{df.columns[c]}'"
        ) from None
    big = np.isfinite(X64) & (np.abs(X64) > np.finfo(np.float32).max)
    if big.any():
        r, c = np.argwhere(big)[0]
        raise InvalidValuesError(
            f"{source}: value {X64[r, c]:g} at row '{df.index[r]}', column "
            f"'{df.columns[c]}' is beyond float32's range (3.4e38); {int(big.sum())} such "
            "cells: rescale the data"
        )
    return X64.astype(np.float32)


def orient(df: pd.DataFrame, orientation: str, source: str, sheet_keys=None) -> pd.DataFrame:
    """Samples in rows, the decision and its reason in ``attrs["orientation"]`` (``info`` prints
    it). ``auto``, in order: a table with per-gene annotation columns or columns named by
    alignment files (featureCounts) has genes in rows; with a sample sheet (``sheet_keys``: its
    ids and the match mode comparing them, see ``id_keys``) the axis whose ids the sheet names is
    the samples'; an axis named by gene ids (symbols, Ensembl, Entrez, probe sets, miRNAs) is the
    genes', one named by sample ids (TCGA barcodes, GEO / SRA accessions) the samples'; only when
    neither tells is the longer axis taken as genes, with a warning when that is a guess: the
    longer axis is short (< AUTO_MIN_GENES) or not clearly longer (< AUTO_MIN_RATIO x)."""
    transpose, reason = _orientation(df, orientation, sheet_keys)
    decision = f"{'genes' if transpose else 'samples'} in rows: {reason}"
    if orientation == "auto" and reason.startswith("the longer axis"):
        n_rows, n_cols = df.shape
        longer, shorter = max(n_rows, n_cols), min(n_rows, n_cols)
        if longer < AUTO_MIN_GENES or longer < AUTO_MIN_RATIO * shorter:
            n_samples, n_genes = (n_cols, n_rows) if transpose else (n_rows, n_cols)
            log.warning(
                "%s: orientation 'auto' takes the longer axis as genes, so this %d x %d table is "
                "read as %d samples x %d genes (%s in rows), a guess for a table this shape; "
                "pass --orientation samples_in_rows|genes_in_rows (orientation= in Python), or "
                "--sample-sheet, to choose",
                source,
                n_rows,
                n_cols,
                n_samples,
                n_genes,
                "genes" if transpose else "samples",
            )
    elif orientation == "auto" and not df.attrs.get("genes_in_rows"):
        log.info("%s: read with %s", source, decision)
    out = df.T if transpose else df
    out.attrs = {**df.attrs, "orientation": decision}
    return out


def _orientation(df: pd.DataFrame, orientation: str, sheet_keys) -> tuple[bool, str]:
    """(genes in rows, why): ``orient``'s rules in their order."""
    if orientation != "auto":
        return orientation == "genes_in_rows", f"--orientation {orientation}"
    if df.attrs.get("genes_in_rows"):
        return True, "featureCounts layout (annotation or alignment-file columns)"
    if sheet_keys is not None:
        keys, match = sheet_keys
        named = _sheet_named(df, keys, match)
        if named is not None:
            return named
    by_ids = _orientation_by_ids(df.index, df.columns)
    if by_ids is not None:
        return by_ids
    return df.shape[0] > df.shape[1], "the longer axis taken as genes (neither axis's names tell)"


def _sheet_named(df: pd.DataFrame, keys, match) -> tuple[bool, str] | None:
    """(transpose, why) from the sheet's ids: the axis it names more of, or, when it names as
    many on both (numeric sample ids beside an Entrez-id header: samples 1..40 and genes
    1..300), the axis it names a larger share of; None when even the shares tie."""
    in_rows = int(id_keys(df.index, match).isin(keys).sum())
    in_cols = int(id_keys(df.columns, match).isin(keys).sum())
    if in_rows != in_cols:
        axis = "columns" if in_cols > in_rows else "rows"
        return in_cols > in_rows, f"the sample sheet names {max(in_rows, in_cols)} of its {axis}"
    n_rows, n_cols = df.shape
    if in_rows == 0 or n_rows == n_cols:
        return None
    axis, n = ("rows", n_rows) if n_rows < n_cols else ("columns", n_cols)
    return axis == "columns", (
        f"the sample sheet names all {in_rows} of its {axis} (and {in_cols} of the "
        f"{max(n_rows, n_cols)} {'columns' if axis == 'rows' else 'rows'})"
        if in_rows == n
        else f"the sample sheet names {in_rows} of its {n} {axis}, a larger share than of the "
        f"{max(n_rows, n_cols)} {'columns' if axis == 'rows' else 'rows'}"
    )


def _orientation_by_ids(rows: pd.Index, cols: pd.Index) -> tuple[bool, str] | None:
    """(transpose, why) when the names tell which axis is which: gene ids (symbols, Ensembl,
    Entrez, probe sets, miRNA names) on one axis, or sample ids (TCGA barcodes, GEO / SRA
    accessions) on the other; None when they tell nothing or contradict each other."""
    said = {"rows": [], "columns": []}
    for axis, names in (("rows", rows), ("columns", cols)):
        genes = gene_axis_ids(list(names))
        if genes:
            said[axis].append(("genes", f"its {axis} are named by {ID_SYSTEM_NAMES[genes]}"))
        samples = detect_sample_ids(names)
        if samples:
            said[axis].append(("samples", f"its {axis} are named by {samples}"))
    genes_in_rows = {k == "genes" for k, _ in said["rows"]} | {
        k == "samples" for k, _ in said["columns"]
    }
    if len(genes_in_rows) != 1:  # nothing said, or the names contradict each other
        return None
    return genes_in_rows.pop(), " and ".join(why for _, why in said["rows"] + said["columns"])


def frame_matrix(df: pd.DataFrame, source: str, fmt: str) -> Matrix:
    """A samples x genes frame as a float32 matrix, with its orientation decision (if any)."""
    check_unique_samples(df.index, source)
    X = numeric_frame(df, source)
    with duplicate_names_allowed():
        adata = ad.AnnData(
            X=X, obs=pd.DataFrame(index=df.index), var=pd.DataFrame(index=df.columns)
        )
    return Matrix(adata, fmt, df.attrs.get("orientation", ""))
