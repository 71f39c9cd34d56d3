"""Sample identifiers of the public archives a cohort comes from (TCGA barcodes, GEO / SRA / ENA /
BioSample accessions, GTEx sample ids): what tells a table's sample axis from its gene axis, and
the keys sample sheets are matched on (TCGA barcodes cut to the patient or sample level)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

SAMPLE_ID_PATTERNS = {
    "TCGA barcodes": re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE),
    "GEO accessions": re.compile(r"^GSM\d+$"),
    "SRA/ENA/DDBJ runs": re.compile(r"^[SED]R[RXS]\d{6,}$"),
    "BioSample accessions": re.compile(r"^SAM(?:N|EA|D)\d+$"),
    "GTEx sample ids": re.compile(r"^GTEX-[A-Z0-9]+-", re.IGNORECASE),
}


def detect_sample_ids(ids: Sequence[str], min_share: float = 0.5) -> str | None:
    """Which archive's sample ids most of ``ids`` are (a key of ``SAMPLE_ID_PATTERNS``), or None.

    Parameters
    ----------
    ids
        Row or column names of a table.
    min_share
        The share of ``ids`` that must match one pattern.

    Returns
    -------
    str or None
        ``"TCGA barcodes"``, ``"GEO accessions"``, ... or None when no pattern covers
        ``min_share`` of them.
    """
    s = pd.Series([str(i).strip() for i in ids], dtype=object)
    if s.empty:
        return None
    shares = {kind: s.str.contains(p).mean() for kind, p in SAMPLE_ID_PATTERNS.items()}
    best = max(shares, key=shares.get)
    return best if shares[best] >= min_share else None


# how sample-sheet ids meet sample ids: exactly, or cut to a TCGA barcode level
MATCH_MODES = {"exact": None, "tcga_sample": "sample", "tcga_patient": "patient"}


def tcga_id(barcode: str, level: str = "sample") -> str:
    """Cut a TCGA barcode to ``patient`` (3 fields) or ``sample`` (4 fields, vial letter gone)."""
    s = str(barcode)
    if "|" in s:  # GDC "case|sample" pair: keep the part that is a barcode at this level
        parts = [p for p in s.split("|") if p.upper().startswith("TCGA-")]
        s = max(parts, key=len) if parts else s.split("|")[-1]
    fields = s.upper().split("-")
    if level == "patient":
        return "-".join(fields[:3])
    if level == "sample":
        if len(fields) < 4:
            return "-".join(fields)
        return "-".join(fields[:3] + [fields[3][:2]])
    raise ValueError(f"level must be 'patient' or 'sample', got '{level}'")


def id_keys(ids, match: str = "exact") -> pd.Index:
    """The keys sample ids are matched on: stripped strings, cut to the TCGA level for
    ``match="tcga_sample"`` / ``"tcga_patient"``."""
    keys = pd.Index(ids).astype(str).str.strip()
    level = MATCH_MODES[match]
    return keys if level is None else keys.map(lambda s: tcga_id(s, level))
