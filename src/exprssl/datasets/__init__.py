"""Bundled real datasets (offline, by name) and a seeded synthetic generator.

>>> exprssl.datasets.names()
['all_leukemia', 'cptac_ucec']
>>> adata = exprssl.datasets.load("all_leukemia")
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import DataFileError
from .synthetic import latent_programmes, synthetic

REGISTRY: dict[str, dict[str, Any]] = {
    "all_leukemia": {
        "file": "all_leukemia.h5ad",
        "description": "Adult acute lymphoblastic leukemia: 128 patients x 12,625 Affymetrix "
        "HG-U95Av2 probe sets, RMA-normalised log2 intensities (microarray; already log scale).",
        "feature_kind": "probe sets",
        "label_columns": ["mol.biol", "BT", "lineage", "sex", "remission", "relapse"],
        "default_label": "mol.biol",
        "demo": {"label": "mol.biol", "min_class_size": 5},
        "license": "Artistic-2.0",
        "citation": "Chiaretti et al. (2004) Blood 103(7):2771-2778; Bioconductor package ALL "
        "1.40.0",
        "source": "Debian r-bioc-all (Bioconductor ALL 1.40.0); scripts/convert_all_leukemia.py",
    },
    "cptac_ucec": {
        "file": "cptac_ucec.h5ad",
        "description": "CPTAC endometrial carcinoma: bulk RNA-seq of 101 tumours and 14 adjacent "
        "normals from 101 patients x 28,057 genes, log2 scale. Group splits by 'patient'.",
        "feature_kind": "genes",
        "label_columns": ["tissue", "Genomics_subtype", "MSI_status", "Histologic_type"],
        "default_label": "Genomics_subtype",
        "demo": {"label": "Genomics_subtype", "group": "patient", "min_class_size": 5},
        "license": "Apache-2.0",
        "citation": "Dou et al. (2020) Cell 180(4):729-748; cptac Python package 0.4.1",
        "source": "PyPI cptac 0.4.1 (endometrial transcriptomics + clinical); "
        "scripts/convert_cptac_ucec.py",
    },
}


def names() -> list[str]:
    return sorted(REGISTRY)


def _entry(name: str) -> dict[str, Any]:
    if name not in REGISTRY:
        raise DataFileError(
            f"'{name}' is neither an existing file nor a bundled dataset "
            f"(bundled: {', '.join(names())})"
        )
    return REGISTRY[name]


@lru_cache(maxsize=4)
def _read(name: str) -> ad.AnnData:
    path = resources.files(__name__).joinpath("data", _entry(name)["file"])
    with resources.as_file(path) as p:
        if not p.exists():
            raise DataFileError(f"bundled dataset file {p} is missing from the installation")
        return ad.read_h5ad(p)


def load(name: str) -> ad.AnnData:
    """A fresh copy of a bundled dataset (samples x features, labels in ``obs``).

    Parameters
    ----------
    name
        A bundled dataset's name.

    Returns
    -------
    anndata.AnnData
        Samples x features, labels in ``obs``.

    Raises
    ------
    exprssl.errors.DataFileError
        An unknown name (the message lists the bundled ones).
    """
    entry = _entry(name)
    adata = _read(name).copy()
    adata.uns["exprssl"] = {"source": f"bundled:{name}", "format": "h5ad"}
    # label counts stay out of uns: class names like "BCR/ABL" are not valid HDF5 keys
    adata.uns["dataset"] = {
        "name": name,
        **{k: entry[k] for k in ("description", "license", "citation", "source")},
    }
    return adata


def info(name: str) -> dict[str, Any]:
    """Shape, label columns with class counts, licence and citation of a bundled dataset."""
    entry = _entry(name)
    a = _read(name)
    labels = {}
    for col in entry["label_columns"]:
        counts = pd.Series(a.obs[col]).value_counts(dropna=True)
        labels[col] = {str(k): int(v) for k, v in counts.items() if v > 0}
    from ..scale import guess_scale

    return {
        "name": name,
        "n_samples": int(a.n_obs),
        "n_genes": int(a.n_vars),
        "feature_kind": entry["feature_kind"],
        "label_columns": labels,
        "default_label": entry["default_label"],
        "scale": guess_scale(np.asarray(a.X)),
        **{k: entry[k] for k in ("description", "license", "citation", "source", "demo")},
    }


__all__ = ["REGISTRY", "info", "latent_programmes", "load", "names", "synthetic"]
