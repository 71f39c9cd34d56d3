"""Stage 1, the cohort: profiles, the task's labels (every profile without one only
pretrains), extra pretraining tables on the shared genes, and content fingerprints that a
resumed run must match."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataFileError, LabelColumnError, SingleClassError
from ..io import require_label
from ..sources import ExpressionSource
from ..splits import DEFAULT_SPLITS, drop_rare_classes, too_small_for_split
from ..utils import plural

if TYPE_CHECKING:
    from .config import BenchmarkConfig

log = logging.getLogger("exprssl")


@dataclass
class Cohort:
    adata: Any  # every profile (AnnData), restricted to the genes shared with any extra pool data
    y: np.ndarray  # class code per profile; -1: no label for this task (it only pretrains)
    classes: np.ndarray
    groups: np.ndarray | None
    dropped: dict[str, int]  # classes too small for the task, their profiles only pretrain
    n_missing: int  # profiles without the label
    sources: list[
        tuple[str, Any, float]
    ]  # extra pretraining data: name, AnnData on the shared genes, coverage
    fingerprint: dict[str, str]  # content hashes: a resumed run must see the same data
    dropped_rule: str = ""  # why they were too small: "fewer than 2 samples (...)"

    @property
    def labelled(self) -> np.ndarray:
        return np.flatnonzero(self.y >= 0)


def _digest(*parts) -> str:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype.kind in "biuf":
            h.update(np.ascontiguousarray(p).view(np.uint8).reshape(-1))
        else:
            h.update(json.dumps(p, default=str).encode())
    return h.hexdigest()


def load_cohort(cfg: BenchmarkConfig) -> Cohort:
    """Load and validate everything that can fail on bad input, before any training.

    Parameters
    ----------
    cfg
        The benchmark's options (data, label, sample sheet, group, extra pretraining data).

    Returns
    -------
    Cohort
        Profiles, class codes (-1: pretraining only), groups and content fingerprints.
    """
    adata = ExpressionSource.load(
        cfg.data,
        labels=cfg.labels,
        label_id_column=cfg.label_id_column,
        orientation=cfg.orientation,
        layer=cfg.layer,
    ).data
    labels = require_label(adata, cfg.label)  # class names as `exprssl info` shows them
    if cfg.group is not None and cfg.group not in adata.obs.columns:
        raise LabelColumnError(
            f"group column '{cfg.group}' not found; "
            f"available: {', '.join(map(str, adata.obs.columns))}"
        )
    missing = labels.isna().to_numpy()
    text = labels.fillna("")
    in_task = ~missing
    dropped, rule = _too_small(
        cfg, text[in_task], adata.obs[cfg.group][in_task] if cfg.group else None
    )
    in_task[np.flatnonzero(in_task)[np.isin(text[in_task], list(dropped))]] = False
    classes = np.unique(text[in_task])
    if len(classes) < 2:
        raise SingleClassError(
            f"label column '{cfg.label}' has {len(classes)} class(es) left for the task; "
            "need at least 2"
        )
    y = np.full(adata.n_obs, -1, dtype=np.int64)
    y[in_task] = np.searchsorted(classes, text[in_task])
    groups = None
    if cfg.group:
        groups = adata.obs[cfg.group].astype(str).to_numpy()
        if adata.obs[cfg.group][in_task].isna().any():
            raise LabelColumnError(f"group column '{cfg.group}' is empty for some labelled samples")
    adata, sources = _pool_sources(adata, cfg.pretrain_data)
    fingerprint = {
        "data": _digest(np.asarray(adata.X), list(adata.obs_names), list(adata.var_names)),
        "labels": _digest(
            list(text[in_task]),
            list(np.flatnonzero(in_task)),
            None if groups is None else list(groups),
        ),
    }
    for name, src, _ in sources:
        fingerprint[f"pretrain_data:{name}"] = _digest(np.asarray(src.X), list(src.obs_names))
    n_missing = int(missing.sum())
    return Cohort(adata, y, classes, groups, dropped, n_missing, sources, fingerprint, rule)


def _too_small(cfg: BenchmarkConfig, labels: pd.Series, groups) -> tuple[dict[str, int], str]:
    """The classes that leave the task (their profiles only pretrain) and why. An explicit
    ``min_class_size`` drops the classes below it and nothing else (1 keeps every class: a
    class the split cannot deal then refuses the run, as in 0.3); 0, the default, drops the
    classes the split cannot deal into each of its parts, and warns once, naming them."""
    if cfg.min_class_size:
        _, dropped = drop_rare_classes(labels, cfg.min_class_size)
        return dropped, f"fewer than {plural(cfg.min_class_size, 'sample')} (min_class_size)"
    parts = list(cfg.split or DEFAULT_SPLITS[cfg.protocol])
    dropped = too_small_for_split(labels, len(parts), groups=groups)
    unit = "sample" if groups is None else f"'{cfg.group}' group"
    named = " and ".join([", ".join(parts[:-1]), parts[-1]])
    rule = f"fewer than {plural(len(parts), unit)}, one for each part of the split: {named}"
    if dropped:
        log.warning(
            "label '%s': %s too small for the split only pretrain, without their labels: %s "
            "(%s; --min-class-size 1 refuses the run instead)",
            cfg.label,
            plural(len(dropped), "class", "classes"),
            ", ".join(f"'{c}' ({plural(n, 'sample')})" for c, n in dropped.items()),
            rule,
        )
    return dropped, rule


def _pool_sources(adata, paths: list[str]):
    """Extra pretraining data, genes aligned by name: every table keeps the genes all of them
    share (each source must hold at least half of the cohort's genes)."""
    from ..genes import reindex_genes

    sources, genes = [], pd.Index(adata.var_names)
    for path in paths:
        src = ExpressionSource.load(path).data
        where = f"pretraining data {path}"
        src, report = reindex_genes(src, list(adata.var_names), min_coverage=0.5, source=where)
        src.var_names = adata.var_names  # named as the cohort (matched through the gene table)
        if report.exact:  # reindex_genes said nothing: say the coverage once (0.3 said it twice)
            log.info("%s: %s", where, report)
        sources.append((str(path), src, report.coverage))
        genes = genes.intersection(adata.var_names[report.index >= 0], sort=False)
    if not sources:
        return adata, []
    shared = set(genes)
    genes = [g for g in adata.var_names if g in shared]
    adata = adata[:, genes].copy()
    sources = [(name, src[:, genes].copy(), cov) for name, src, cov in sources]
    for name, src, _ in sources:
        _require_signal(name, src.X)
    return adata, _without_cohort(adata, sources)


def _require_signal(name: str, X) -> None:
    """Refuse a source with nothing to learn from: one value everywhere (an all-zero export),
    or one profile repeated; pooled, it would only dilute the cohort's."""
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    if not X.size:
        return
    lo, hi = np.nanmin(X), np.nanmax(X)
    if lo == hi:
        raise DataFileError(
            f"pretraining data {name}: every value on the shared genes is {lo:g}: no signal to "
            "pretrain on (an empty export?); leave it out of --pretrain-data"
        )
    if len(X) > 1 and not np.ptp(X, axis=0).any():
        raise DataFileError(
            f"pretraining data {name}: all {len(X):,} profiles are the same on the shared genes: "
            "no signal to pretrain on; leave it out of --pretrain-data"
        )


def _without_cohort(adata, sources: list) -> list:
    """Each source without the cohort's own profiles: the same sample id (the same sample,
    perhaps processed again) or the same values on the shared genes (a copy under another
    name). Each split's pool takes the cohort's profiles its split allows, never its test
    part; a copy in a source would put them in every pool. Said in one line per source."""
    ids, rows = set(adata.obs_names), set(_row_hashes(adata.X))
    kept = []
    for name, src, cov in sources:
        by_id = src.obs_names.isin(list(ids))
        by_values = np.isin(_row_hashes(src.X), list(rows)) & ~by_id
        drop = by_id | by_values
        if drop.any():
            log.warning(
                "pretraining data %s: %s of its %s are the cohort's own (%d by sample id, %d by "
                "their values on the shared genes): left out, so no split's test profiles are "
                "pretrained on%s",
                name,
                f"{int(drop.sum()):,}",
                plural(src.n_obs, "profile"),
                int(by_id.sum()),
                int(by_values.sum()),
                "; nothing of it is left to pool" if drop.all() else "",
            )
        if not drop.all():
            kept.append((name, src[~drop].copy() if drop.any() else src, cov))
    return kept


def _row_hashes(X, block: int = 1024) -> list[bytes]:
    """A digest of each profile's values (float32, -0.0 as 0.0), read in blocks of rows."""
    out = []
    for start in range(0, X.shape[0], block):
        part = X[start : start + block]
        part = part.toarray() if hasattr(part, "toarray") else np.asarray(part)
        part = np.ascontiguousarray(part, dtype=np.float32) + np.float32(0.0)
        out.extend(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in part)
    return out
