"""Build the bundled `all_leukemia` dataset from the Bioconductor ALL export.

    python scripts/convert_all_leukemia.py --src ../shared/data/all_leukemia \
        --out src/exprssl/datasets/data/all_leukemia.h5ad

Source: Debian package r-bioc-all (Bioconductor ALL 1.40.0, Artistic-2.0), exported with R's
Biobase as `exprs(ALL)` (expression.csv.gz: probe sets x patients, RMA log2) and `pData(ALL)`
(samples.csv). Output: samples x probe sets float32 AnnData, all clinical columns in obs plus
`lineage` (B/T), gzip-compressed. Deterministic: rerunning gives identical content.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from exprssl.utils import atomic_path


def convert(src: Path) -> ad.AnnData:
    expr = pd.read_csv(src / "expression.csv.gz", index_col=0)
    samples = pd.read_csv(src / "samples.csv", index_col=0, dtype={0: str}, keep_default_na=True)
    samples.index = samples.index.astype(str).str.zfill(5)
    expr.columns = expr.columns.astype(str).str.zfill(5)
    if list(expr.columns) != list(samples.index):
        raise SystemExit("expression columns and sample sheet rows differ")
    obs = samples.copy()
    for col in obs.columns:
        if obs[col].dtype == object:
            obs[col] = obs[col].astype("string").astype(object).where(obs[col].notna(), None)
            obs[col] = pd.Categorical(obs[col])
    obs["lineage"] = pd.Categorical(samples["BT"].str[0])
    obs.index.name = None
    var = pd.DataFrame(index=expr.index.astype(str))
    var.index.name = None
    adata = ad.AnnData(X=expr.T.to_numpy(dtype=np.float32), obs=obs, var=var)
    adata.uns["dataset"] = {
        "name": "all_leukemia",
        "description": "Acute lymphoblastic leukemia, 128 patients, Affymetrix HG-U95Av2, RMA log2",
        "license": "Artistic-2.0",
        "citation": "Chiaretti S. et al. (2004) Gene expression profile of adult T-cell acute "
        "lymphocytic leukemia identifies distinct subsets of patients with different response to "
        "therapy and survival. Blood 103(7):2771-2778.",
        "source": "Bioconductor data package ALL 1.40.0 (Debian r-bioc-all)",
    }
    return adata


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--src", type=Path, default=Path("../shared/data/all_leukemia"))
    p.add_argument("--out", type=Path, default=Path("src/exprssl/datasets/data/all_leukemia.h5ad"))
    args = p.parse_args()
    adata = convert(args.src)
    with atomic_path(args.out) as tmp:
        adata.write_h5ad(tmp, compression="gzip", compression_opts=9)
    print(
        f"wrote {args.out}: {adata.n_obs} samples x {adata.n_vars} probe sets, "
        f"{args.out.stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
