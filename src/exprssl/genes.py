"""Gene identifiers: version stripping, duplicate collapsing, and alignment by name."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import ConfigError, DuplicateGenesError, GeneOverlapError

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
        raise ConfigError(f"duplicate_genes must be one of {', '.join(DUPLICATE_POLICIES)}, got '{policy}'")
    names = pd.Index(adata.var_names)
    if names.is_unique:
        return adata
    dups = names[names.duplicated()].unique()
    if policy == "error":
        raise DuplicateGenesError(f"{source}: {len(dups)} duplicated gene ids, e.g. "
                                  f"{', '.join(map(str, dups[:5]))} (choose duplicate_genes='sum', 'mean' or 'first')")
    codes, uniques = pd.factorize(names)
    log.info("%s: merged %d duplicated gene ids by %s, e.g. %s (duplicate_genes: sum, mean, first or error)",
             source, len(dups), policy, ", ".join(map(str, dups[:3])))
    if policy == "first":
        first = np.unique(codes, return_index=True)[1]
        return adata[:, np.sort(first)].copy()
    ind = sp.csr_matrix((np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
                        shape=(len(codes), len(uniques)))
    if policy == "mean":
        ind = ind.multiply(1.0 / np.bincount(codes)).tocsr().astype(np.float32)
    X = np.asarray(ind.T.dot(np.asarray(adata.X).T).T, dtype=np.float32)
    var = adata.var.iloc[np.unique(codes, return_index=True)[1]].copy()
    var.index = pd.Index(uniques.astype(str))
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=var, uns=dict(adata.uns))


@dataclass
class AlignmentReport:
    n_reference: int
    n_present: int
    extra: int
    missing: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.n_present / self.n_reference if self.n_reference else 0.0

    def __str__(self) -> str:
        return (f"{self.n_present} of {self.n_reference} reference genes present "
                f"({100 * self.coverage:.1f}%), {len(self.missing)} missing, {self.extra} extra ignored")


def align_genes(adata: ad.AnnData, reference: Sequence[str], *, min_coverage: float = 0.5,
                fill_value: float = np.nan, source: str | None = None) -> tuple[ad.AnnData, AlignmentReport]:
    """Reorder ``adata``'s genes to ``reference`` by NAME (never by position).

    Versions are stripped on both sides. Reference genes absent from the data are filled with
    ``fill_value``; coverage below ``min_coverage`` is a ``GeneOverlapError``.
    """
    source = source or str(adata.uns.get("exprssl", {}).get("source", "data"))
    ref = strip_version(list(reference))
    have = pd.Index(strip_version(list(adata.var_names)))
    if not have.is_unique:
        raise DuplicateGenesError(f"{source}: duplicated gene ids after version stripping; collapse them first")
    pos = have.get_indexer(ref)
    present = pos >= 0
    report = AlignmentReport(n_reference=len(ref), n_present=int(present.sum()),
                             extra=int(len(have) - present.sum()), missing=list(ref[~present]))
    if report.coverage < min_coverage:
        raise GeneOverlapError(
            f"{source}: only {100 * report.coverage:.1f}% of the {len(ref)} reference genes found "
            f"({report.n_present}); missing e.g. {', '.join(report.missing[:5])}; "
            f"below the minimum {100 * min_coverage:.0f}%")
    X = np.full((adata.n_obs, len(ref)), fill_value, dtype=np.float32)
    src = np.asarray(adata.X.toarray() if sp.issparse(adata.X) else adata.X)
    X[:, present] = src[:, pos[present]]
    out = ad.AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=pd.Index(ref)), uns=dict(adata.uns))
    if report.missing:
        log.info("%s: %s", source, report)
    return out, report
