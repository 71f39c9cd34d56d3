"""Transfer, end to end and offline: pretrain one encoder on TCGA prostate cancer miRNA profiles
(PRAD), then benchmark it (``--model``) on another cohort, TCGA breast cancer (BRCA: invasive
ductal vs lobular carcinoma), against the same SSL method pretrained on the cohort's own pool
and a tuned logistic regression, on the same splits. Prints the paired difference "transfer
minus in-cohort pool" per label fraction.

The data are TCGA miRNA-seq read counts as shipped inside the syng-bts wheel (AGPL-3.0, not
redistributed here): ``pip install --no-deps syng-bts`` once; nothing is downloaded at run time.

    python scripts/transfer_demo.py --out transfer_demo        # or: make transfer-demo

Every step is seeded: a rerun gives the same numbers (and resumes a killed benchmark).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import exprssl
from exprssl import SSLModel
from exprssl.evaluation.stats import paired_difference

SUBTYPES = {"Infiltrating Ductal Carcinoma": "IDC", "Infiltrating Lobular Carcinoma": "ILC"}
TOP_GENES = 500  # most variable miRNAs (of 1,881) on the pretraining data: minutes, not hours
ENCODER = {"hidden_dims": [256, 128], "dropout": 0.1}


def syng_file(name: str) -> Path:
    """A data file inside the installed syng-bts wheel (read without importing the package,
    whose own dependencies are not needed)."""
    try:
        dist = md.distribution("syng-bts")
    except md.PackageNotFoundError:
        raise SystemExit(
            "transfer_demo: needs the syng-bts wheel's data: pip install --no-deps syng-bts"
        ) from None
    path = Path(dist.locate_file(f"syng_bts/data/{name}"))
    if not path.is_file():
        raise SystemExit(f"transfer_demo: {path} not found in the installed syng-bts")
    return path


def counts(name: str, source: str) -> ad.AnnData:
    frame = pd.read_parquet(syng_file(name))
    a = ad.AnnData(
        frame.to_numpy(dtype=np.float32),
        var=pd.DataFrame(index=frame.columns),
        obs=pd.DataFrame(index=frame.index.astype(str)),
    )
    a.uns["exprssl"] = {"source": source}
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="transfer_demo", help="working directory (created)")
    ap.add_argument("--epochs", type=int, default=100, help="pretraining epochs (both encoders)")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=2, help="label subsets per split and fraction")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument(
        "--pool-scaling",
        default="standardize",
        help="standardize: the cohort z-scored per split before the PRAD encoder; "
        "none: the encoder's own PRAD statistics",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # 1. pretrain once, on another cancer type (TCGA PRAD, 551 profiles)
    model_dir = out / "prad_scarf"
    if not (model_dir / "weights.pt").exists():
        prad = counts("transfer/PRAD.parquet", "TCGA-PRAD miRNA-seq counts (syng-bts 3.6.1)")
        SSLModel(
            "scarf",
            method_params=ENCODER,
            preprocessor={"top_k_variance": TOP_GENES},
            epochs=args.epochs,
            batch_size=64,
            patience=10,
            seed=0,
            progress=False,
        ).fit(prad).save(model_dir)
    t_pretrain = time.perf_counter() - t0

    # 2. the target cohort: TCGA BRCA, ductal vs lobular (profiles without the label only pretrain
    # the in-cohort encoder); samples grouped by patient, so tumour and normal of one patient
    # never straddle a split
    cohort_file = out / "brca.h5ad"
    if not cohort_file.exists():
        brca = counts("transfer/BRCA.parquet", "TCGA-BRCA miRNA-seq counts (syng-bts 3.6.1)")
        groups = pd.read_parquet(syng_file("case/brca_subtype/BRCASubtypeSel_groups.parquet"))
        brca.obs["subtype"] = groups["groups"].map(SUBTYPES).reindex(brca.obs_names).to_numpy()
        brca.obs["patient"] = [".".join(s.split(".")[:3]) for s in brca.obs_names]
        brca.write_h5ad(cohort_file)

    # 3. benchmark: the PRAD encoder (--model) vs SCARF pretrained on each split's BRCA pool
    # vs logistic regression, same splits, label subsets and tuning
    bench = out / "benchmark"
    run = exprssl.benchmark(
        str(cohort_file),
        "subtype",
        str(bench),
        methods=["scarf"],
        models=[str(model_dir)],
        baselines=["logreg"],
        group="patient",
        splits=args.splits,
        seeds=args.seeds,
        fractions=[0.02, 0.05, 0.2, 0.5, 1.0],
        epochs=args.epochs,
        batch_size=64,
        patience=10,
        encoder=ENCODER,
        preprocessing={"top_k_variance": TOP_GENES},
        finetune={"epochs": 30, "lr": 1e-3, "encoder_lr": 1e-4, "batch_size": 32, "patience": 5},
        pool_scaling=args.pool_scaling,
        jobs=args.jobs,
        progress=False,
    )
    elapsed = time.perf_counter() - t0

    # 4. what transfer gained over the in-cohort pool: paired, same splits, subsets, test samples
    preds = pd.read_parquet(bench / "predictions.parquet")
    n_classes = len(run.manifest["dataset"]["classes"])
    rows = []
    for frac, g in run.summary.groupby("fraction"):
        for head in ("linear_probe", "finetune"):
            d, lo, hi = paired_difference(
                preds, frac, f"prad_scarf+{head}", f"scarf+{head}", n_classes
            )
            rows.append(
                {
                    "fraction": frac,
                    "n_labelled": int(round(g["n_labelled"].mean())),
                    "head": head,
                    "transfer_minus_in_cohort": round(d, 3),
                    "ci_lo": round(lo, 3),
                    "ci_hi": round(hi, 3),
                    "reading": "transfer better"
                    if lo > 0
                    else "transfer worse"
                    if hi < 0
                    else "no detectable difference",
                }
            )
    gain = pd.DataFrame(rows)
    gain.to_csv(out / "transfer_gain.csv", index=False)
    cols = [
        "fraction",
        "approach",
        "mean",
        "lo",
        "hi",
        "vs",
        "diff",
        "diff_lo",
        "diff_hi",
        "verdict",
        "degenerate",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(run.summary[cols].round(3).to_string(index=False))
        print("\ntransfer (PRAD encoder) minus in-cohort pool (SCARF on BRCA), balanced accuracy:")
        print(gain.to_string(index=False))
    print(
        f"\npretraining on PRAD: {t_pretrain:.0f} s; total: {elapsed:.0f} s; "
        f"report: {bench / 'report.html'}"
    )


if __name__ == "__main__":
    main()
