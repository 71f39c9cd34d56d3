"""Build the bundled `cptac_ucec` dataset from the cptac 0.4.1 wheel (PyPI).

    pip download --no-deps -d /tmp/cptac cptac==0.4.1
    (cd /tmp/cptac && unzip -q cptac-0.4.1-*.whl)
    python scripts/convert_cptac_ucec.py --src /tmp/cptac \\
        --out src/exprssl/datasets/data/cptac_ucec.h5ad

Source: CPTAC endometrial carcinoma (UCEC) discovery cohort, Dou et al. 2020, as packaged in the
cptac Python package 0.4.1 (Apache-2.0; later versions download data at run time).
`transcriptomics_linear.cct.gz`: bulk RNA-seq, 28,057 genes x 115 samples (101 tumours, 14
adjacent normals from the same patients), log2 scale, two decimals. `clinical.txt` (latin-1):
sample annotations. Output: samples x genes float32 AnnData with the label columns below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from exprssl.utils import atomic_path

COLUMNS = {
    "Proteomics_Participant_ID": "patient",
    "Proteomics_Tumor_Normal": "tissue",
    "Genomics_subtype": "Genomics_subtype",
    "MSI_status": "MSI_status",
    "Histologic_type": "Histologic_type",
    "FIGO_stage": "FIGO_stage",
    "Histologic_Grade_FIGO": "grade",
    "Case_excluded": "Case_excluded",
    "Age": "age",
    "BMI": "BMI",
}


def convert(src: Path) -> ad.AnnData:
    data = src / "cptac" / "endometrial" / "data"
    expr = pd.read_csv(data / "transcriptomics_linear.cct.gz", sep="\t", index_col=0)
    clinical = pd.read_csv(data / "clinical.txt", sep="\t", index_col=0, encoding="latin-1")
    obs = clinical.loc[expr.columns, list(COLUMNS)].rename(columns=COLUMNS)
    for col in obs.columns:
        if obs[col].dtype == object:
            obs[col] = pd.Categorical(obs[col])
    obs["age"] = pd.to_numeric(obs["age"], errors="coerce")
    obs.index = obs.index.astype(str)
    obs.index.name = None
    var = pd.DataFrame(index=expr.index.astype(str))
    var.index.name = None
    adata = ad.AnnData(X=expr.T.to_numpy(dtype=np.float32), obs=obs, var=var)
    adata.uns["dataset"] = {
        "name": "cptac_ucec",
        "description": "CPTAC endometrial carcinoma (UCEC): bulk RNA-seq of 101 tumours and 14 "
        "adjacent normals of 101 patients (obs['patient']: normals share patients with tumours), "
        "28,057 genes, log2 scale",
        "license": "Apache-2.0",
        "citation": "Dou Y. et al. (2020) Proteogenomic characterization of endometrial "
        "carcinoma. Cell 180(4):729-748",
        "source": "cptac 0.4.1 (PyPI), endometrial/data/transcriptomics_linear.cct.gz and "
        "clinical.txt",
    }
    return adata


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--src", type=Path, default=Path("/tmp/cptac"))
    p.add_argument("--out", type=Path, default=Path("src/exprssl/datasets/data/cptac_ucec.h5ad"))
    args = p.parse_args()
    adata = convert(args.src)
    with atomic_path(args.out) as tmp:
        adata.write_h5ad(tmp, compression="gzip", compression_opts=9)
    print(
        f"wrote {args.out}: {adata.n_obs} samples x {adata.n_vars} genes, "
        f"{args.out.stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
