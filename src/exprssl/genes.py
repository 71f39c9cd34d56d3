"""Gene identifiers: version stripping, duplicate collapsing, and alignment by name, across
identifier systems (Ensembl, HGNC symbols and aliases, Entrez) through a shipped offline table."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import ConfigError, DuplicateGenesError, GeneOverlapError
from .utils import deprecated_alias

log = logging.getLogger("exprssl")
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*[GTPE]\d{6,})\.\d+(_PAR_Y)?$")
DUPLICATE_POLICIES = ("sum", "mean", "first", "error")


def strip_version(ids: Sequence[str]) -> np.ndarray:
    """ENSG00000141510.16 -> ENSG00000141510; symbols (HLA-A) and probe ids (1000_at) untouched.

    GENCODE's PAR_Y copies (ENSG...5_PAR_Y) keep their suffix so they stay distinct genes.
    """
    s = pd.Series(np.asarray(ids, dtype=str))
    m = s.str.extract(_ENSEMBL_VERSION)
    stripped = np.where(m[0].notna(), m[0].fillna("") + m[1].fillna(""), s)
    return stripped.astype(str)


def collapse_duplicates(adata: ad.AnnData, policy: str = "sum", source: str = "data") -> ad.AnnData:
    """Merge columns sharing a gene id: ``sum`` (counts of transcripts/probes of one gene),
    ``mean``, ``first``, or ``error``. Vectorised as one sparse indicator matmul."""
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"duplicate_genes must be one of {', '.join(DUPLICATE_POLICIES)}, got '{policy}'"
        )
    names = pd.Index(adata.var_names)
    if names.is_unique:
        return adata
    dups = names[names.duplicated()].unique()
    if policy == "error":
        raise DuplicateGenesError(
            f"{source}: {len(dups)} duplicated gene ids, e.g. "
            f"{', '.join(map(str, dups[:5]))} (choose duplicate_genes='sum', 'mean' or 'first')"
        )
    codes, uniques = pd.factorize(names)
    log.info(
        "%s: merged %d duplicated gene ids by %s, e.g. %s (duplicate_genes: sum, mean, first or "
        "error)",
        source,
        len(dups),
        policy,
        ", ".join(map(str, dups[:3])),
    )
    if policy == "first":
        first = np.unique(codes, return_index=True)[1]
        return adata[:, np.sort(first)].copy()
    ind = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
        shape=(len(codes), len(uniques)),
    )
    if policy == "mean":
        ind = ind.multiply(1.0 / np.bincount(codes)).tocsr().astype(np.float32)
    X = np.asarray(ind.T.dot(np.asarray(adata.X).T).T, dtype=np.float32)
    var = adata.var.iloc[np.unique(codes, return_index=True)[1]].copy()
    var.index = pd.Index(uniques.astype(str))
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=var, uns=dict(adata.uns))


# ----------------------------------------------------------------- identifier table
GENE_TABLE_FILE = "gene_ids_human.tsv.gz"
ID_SYSTEMS = ("ensembl", "symbol", "entrez", "probe", "mirna", "unknown")
_ENSEMBL_GENE = re.compile(r"^ENS[A-Z]*G\d{6,}$")
_PROBE = re.compile(r"_[a-z_]*at$|^ILMN_\d+$|^A_\d+_P\d+$|^cg\d{8}$")
# miRBase names (hsa-mir-21, hsa-miR-21-5p, hsa-let-7a-1) and accessions (MIMAT0000076, MI0000077)
_MIRNA = re.compile(r"^[a-z]{3}-(?:mir|let|lin)-|^MIMAT\d{7}$|^MI\d{7}$", re.IGNORECASE)
ID_SYSTEM_NAMES = {
    "ensembl": "Ensembl gene ids",
    "symbol": "gene symbols",
    "entrez": "Entrez gene ids",
    "probe": "microarray probe ids",
    "mirna": "miRNA names",
}


@lru_cache(maxsize=1)
def gene_table() -> pd.DataFrame:
    """The shipped human identifier table (org.Hs.eg.db, see its LICENSE file): one row per
    (Entrez gene id, kind, name), kind one of ``symbol``, ``alias`` (incl. previous symbols),
    ``ensembl``; read once, offline."""
    from importlib import resources

    ref = resources.files("exprssl.datasets") / "data" / GENE_TABLE_FILE
    with resources.as_file(ref) as path:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table


@lru_cache(maxsize=1)
def _resolver() -> pd.DataFrame:
    """name -> Entrez gene id(s), each name taking only its strongest kind: an official symbol,
    Ensembl or Entrez id over an alias (so a current symbol is never re-read as another gene's
    alias). A name left with several ids is ambiguous."""
    t = gene_table()
    ids = t["gene_id"].drop_duplicates()
    rows = pd.concat(
        [
            t[["name", "gene_id"]].assign(rank=np.where(t["kind"] == "alias", 1, 0)),
            pd.DataFrame({"name": ids, "gene_id": ids, "rank": 0}),
        ],
        ignore_index=True,
    )
    best = rows.groupby("name")["rank"].transform("min")
    rows = rows[rows["rank"] == best].drop_duplicates(["name", "gene_id"])
    return rows[["name", "gene_id"]].reset_index(drop=True)


def _keys(names: np.ndarray) -> pd.DataFrame:
    """(position, gene_id, n_ids) for each name the table knows."""
    frame = pd.DataFrame({"pos": np.arange(len(names)), "name": names})
    keys = frame.merge(_resolver(), on="name")[["pos", "gene_id"]]
    keys["n_ids"] = keys.groupby("pos")["gene_id"].transform("size")
    return keys


def detect_id_system(genes: Sequence[str]) -> str:
    """The identifier system most of ``genes`` use: ``ensembl``, ``symbol`` (HGNC symbols or
    aliases the table knows), ``entrez``, ``probe`` (microarray probe sets), ``mirna`` (miRBase
    names or accessions) or ``unknown``; recorded in a model's card so users know what their
    cohort must be given in, and used to tell a table's gene axis from its sample axis.

    Parameters
    ----------
    genes
        Gene ids.

    Returns
    -------
    str
        ``"ensembl"``, ``"symbol"``, ``"entrez"``, ``"probe"``, ``"mirna"`` or ``"unknown"``.
    """
    s = pd.Series(strip_version([str(g) for g in genes]))
    if s.empty or s.tolist() == [str(i) for i in range(len(s))]:  # AnnData's default names
        return "unknown"
    share = _id_shares(s, ("symbol", "alias"))
    share["entrez"] = s.str.fullmatch(r"\d+").mean()
    best = max(share, key=share.get)
    return best if share[best] >= 0.5 else "unknown"


def gene_axis_ids(names: Sequence[str]) -> str | None:
    """The identifier system of ``names`` when it marks them as genes and not samples (a table's
    orientation): Ensembl ids, official symbols, probe sets or miRNA names, for at least half of
    them; None otherwise. Numbers and aliases tell nothing here: Entrez ids look like numeric
    sample ids, and aliases include names such as ``S1`` or ``p1``."""
    s = pd.Series(strip_version([str(g) for g in names]))
    if s.empty:
        return None
    share = _id_shares(s, ("symbol",))
    best = max(share, key=share.get)
    return best if share[best] >= 0.5 else None


def _id_shares(s: pd.Series, symbol_kinds: tuple[str, ...]) -> dict[str, float]:
    """The share of ``s`` of each pattern-recognised system, and of names the identifier table
    holds as one of ``symbol_kinds``."""
    known = _names_of_kind(symbol_kinds)
    return {
        "ensembl": s.str.match(_ENSEMBL_GENE).mean(),
        "probe": s.str.contains(_PROBE).mean(),
        "mirna": s.str.contains(_MIRNA).mean(),
        "symbol": s.isin(known).mean(),
    }


@lru_cache(maxsize=4)
def _names_of_kind(kinds: tuple[str, ...]) -> frozenset[str]:
    t = gene_table()
    return frozenset(t.loc[t["kind"].isin(kinds), "name"])


# ----------------------------------------------------------------------- alignment
@dataclass
class AlignmentReport:
    """How reference (model) genes were found in a data table: ``direct`` by name (versions
    stripped), ``mapped`` through the identifier table (reference gene -> data column),
    ``ambiguous`` (several candidates or a name of several genes: never guessed; reference gene
    -> candidate columns) and ``missing``."""

    n_reference: int
    n_present: int
    extra: int
    missing: list[str] = field(default_factory=list)
    direct: int = 0
    mapped: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False)

    @property
    def exact(self) -> bool:
        """Every reference gene found by its own name (nothing mapped, ambiguous or missing)."""
        return not (self.missing or self.mapped or self.ambiguous)

    @property
    def coverage(self) -> float:
        return self.n_present / self.n_reference if self.n_reference else 0.0

    def summary(self) -> str:
        """One line for logs and reports."""
        return (
            f"{self.n_present} of {self.n_reference} reference genes present "
            f"({100 * self.coverage:.1f}%: {self.direct} by name, {len(self.mapped)} through the "
            f"identifier table), {len(self.ambiguous)} ambiguous, {len(self.missing)} missing, "
            f"{self.extra} extra ignored"
        )

    __str__ = summary

    def to_frame(self) -> pd.DataFrame:
        """One row per reference gene not matched by name: reference, status, data name(s)."""
        rows = (
            [(g, "mapped", d) for g, d in self.mapped.items()]
            + [(g, "ambiguous", "|".join(c)) for g, c in self.ambiguous.items()]
            + [(g, "missing", "") for g in self.missing]
        )
        return pd.DataFrame(rows, columns=["reference", "status", "data"])


def match_genes(names: Sequence[str], reference: Sequence[str]) -> AlignmentReport:
    """Find each ``reference`` gene among the data's ``names``: by name first (Ensembl versions
    stripped), then, for the rest, through the identifier table (Ensembl <-> symbol, alias ->
    current symbol, Entrez). ``index`` holds each reference gene's data column or -1. The one
    home of gene matching: every reader, model and pool goes through it.

    Parameters
    ----------
    names
        The data's gene ids.
    reference
        The genes to find (a model's input genes).

    Returns
    -------
    AlignmentReport
        Per reference gene its data column (``index``), and how it was found.
    """
    return _match_cached(tuple(map(str, names)), tuple(map(str, reference)))


@lru_cache(maxsize=8)
def _match_cached(names: tuple[str, ...], reference: tuple[str, ...]) -> AlignmentReport:
    have, ref = strip_version(list(names)), strip_version(list(reference))
    first = pd.Series(np.arange(len(have)), index=have)
    first = first[~first.index.duplicated()]
    index = first.reindex(ref).fillna(-1).to_numpy(dtype=np.int64)
    direct = index >= 0
    mapped: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    todo_ref = np.flatnonzero(~direct)
    free = np.setdiff1d(np.arange(len(have)), index[direct])
    if len(todo_ref) and len(free):
        rk, ck = _keys(ref[todo_ref]), _keys(have[free])
        pairs = rk.merge(ck, on="gene_id", suffixes=("_r", "_c")).drop_duplicates(
            ["pos_r", "pos_c"]
        )
        if len(pairs):
            per_ref = pairs.groupby("pos_r")["pos_c"].transform("size")
            per_col = pairs.groupby("pos_c")["pos_r"].transform("size")
            ok = (pairs["n_ids_r"] == 1) & (pairs["n_ids_c"] == 1) & (per_ref == 1) & (per_col == 1)
            good = pairs[ok]
            index[todo_ref[good["pos_r"].to_numpy()]] = free[good["pos_c"].to_numpy()]
            mapped = dict(
                zip(
                    ref[todo_ref[good["pos_r"]]].tolist(),
                    have[free[good["pos_c"]]].tolist(),
                    strict=True,
                )
            )
            bad = pairs[~pairs["pos_r"].isin(good["pos_r"])]
            for r, cols in bad.groupby("pos_r")["pos_c"]:
                ambiguous[str(ref[todo_ref[r]])] = [str(names[free[c]]) for c in cols]
    present = index >= 0
    missing = [str(g) for g, p in zip(ref, present, strict=True) if not p and g not in ambiguous]
    return AlignmentReport(
        n_reference=len(ref),
        n_present=int(present.sum()),
        extra=int(len(set(have)) - present.sum()),
        missing=missing,
        direct=int(direct.sum()),
        mapped=mapped,
        ambiguous=ambiguous,
        index=index,
    )


def reindex_genes(
    adata: ad.AnnData,
    reference: Sequence[str],
    *,
    min_coverage: float = 0.5,
    fill_value: float = np.nan,
    source: str | None = None,
) -> tuple[ad.AnnData, AlignmentReport]:
    """Reorder ``adata``'s genes to ``reference`` by NAME (never by position), through the
    identifier table where names differ (see ``match_genes``).

    Reference genes absent from the data are filled with ``fill_value``; coverage below
    ``min_coverage`` is a ``GeneOverlapError``.

    Parameters
    ----------
    adata
        The data to align.
    reference
        The gene order to produce.
    min_coverage
        Smallest fraction of ``reference`` that must be found.
    fill_value
        Value for reference genes absent from the data.
    source
        The data's name for messages; None for ``adata``'s own.

    Returns
    -------
    tuple of (anndata.AnnData, AlignmentReport)
        The data with genes ``reference`` in order, and how they were matched.

    Raises
    ------
    exprssl.errors.GeneOverlapError
        Coverage below ``min_coverage``.
    """
    source = source or str(adata.uns.get("exprssl", {}).get("source", "data"))
    ref = strip_version(list(reference))
    if not pd.Index(strip_version(list(adata.var_names))).is_unique:
        raise DuplicateGenesError(
            f"{source}: duplicated gene ids after version stripping; collapse them first"
        )
    report = match_genes(list(adata.var_names), list(reference))
    pos = report.index
    present = pos >= 0
    if report.coverage < min_coverage:
        raise GeneOverlapError(
            f"{source}: only {100 * report.coverage:.1f}% of the {len(ref)} reference genes found "
            f"({report.n_present}); missing e.g. {', '.join(report.missing[:5])}; "
            f"below the minimum {100 * min_coverage:.0f}%"
        )
    X = np.full((adata.n_obs, len(ref)), fill_value, dtype=np.float32)
    src = np.asarray(adata.X.toarray() if sp.issparse(adata.X) else adata.X)
    X[:, present] = src[:, pos[present]]
    out = ad.AnnData(
        X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=pd.Index(ref)), uns=dict(adata.uns)
    )
    if not report.exact:
        log.info("%s: %s", source, report)
    return out, report


# the 0.3 name, kept for one release (``exprssl.utils.deprecated_alias``)
align_genes = deprecated_alias(reindex_genes, "exprssl.align_genes", "exprssl.reindex_genes")
