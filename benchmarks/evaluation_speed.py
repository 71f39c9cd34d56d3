"""Wall time of a small-cohort benchmark, split into pretraining and evaluation.

The cohort mimics a public 7-tissue microarray set (189 samples x 500 genes, classes of 6 to 39
samples): seeded synthetic log-scale data with those class sizes. The configuration is the one
issue 13 measured (3 methods, 6 label fractions, 3 seeds); ``--tuned`` adds the repeated splits
and inner-CV tuning of the trustworthy-answers configuration.

    python benchmarks/evaluation_speed.py                 # this checkout
    PYTHONPATH=/path/to/old/src python benchmarks/evaluation_speed.py   # another version

Prints the phases' seconds and a last line ``summary: pretrain_s=... evaluation_s=... total_s=...``.
Compare versions in one session, on the same machine state: ratios, not seconds, travel.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CLASS_SIZES = (39, 38, 34, 31, 26, 15, 6)


def cohort(path: Path, seed: int = 0) -> Path:
    from exprssl.datasets import synthetic

    a = synthetic(
        8 * max(CLASS_SIZES),
        500,
        len(CLASS_SIZES),
        counts=False,
        seed=seed,
        n_informative=200,
        module_size=20,
    )
    y = a.obs["label"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    keep = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(y == f"class_{k}"), size, replace=False)
                for k, size in enumerate(CLASS_SIZES)
            ]
        )
    )
    a = a[keep].copy()
    a.write_h5ad(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", default="scarf,byol,vime")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-fractions", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes (new versions only)"
    )
    parser.add_argument(
        "--tuned", action="store_true", help="repeated splits and inner-CV tuning (new versions)"
    )
    parser.add_argument("--out", default=None, help="keep the benchmark directory here")
    parser.add_argument(
        "--demo01",
        action="store_true",
        help="instead: exprssl 0.1's demo configuration on the "
        "bundled leukemia cohort (5 seeds, each with its own pretraining; no tuning, one split)",
    )
    args = parser.parse_args()

    from exprssl.evaluation.protocol import BenchmarkConfig, run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "bench"
        if args.demo01:
            options = dict(
                data="all_leukemia",
                label="mol.biol",
                out=str(out),
                min_class_size=5,
                seeds=5,
                pretrain_seeds=5,
                n_fractions=5,
                protocol="paper",
                split={"pretrain": 0.5, "finetune": 0.25, "test": 0.25},
                epochs=100,
                batch_size=32,
                patience=15,
                preprocessing={"top_k_variance": 5000},
                finetune={
                    "epochs": 60,
                    "lr": 1e-3,
                    "encoder_lr": 1e-4,
                    "batch_size": 16,
                    "patience": 10,
                },
            )
        else:
            options = dict(
                data=str(cohort(Path(tmp) / "tissues.h5ad")),
                label="label",
                out=str(out),
                methods=args.methods.split(","),
                seeds=args.seeds,
                n_fractions=args.n_fractions,
                epochs=args.epochs,
            )
        fields = BenchmarkConfig.__dataclass_fields__
        if "splits" in fields:  # versions with repeated splits and tuning
            options.update(splits=None if args.tuned else 1, tune=args.tuned)
            if args.jobs is not None:
                options["jobs"] = args.jobs
        t0 = time.perf_counter()
        run_benchmark(BenchmarkConfig(**options), progress=False)
        total = time.perf_counter() - t0
        timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    pretrain = sum(v for k, v in timings.items() if k.startswith("pretrain"))
    evaluation = timings.get("evaluation", float("nan"))
    for k, v in timings.items():
        print(f"{k:>24}: {v:8.1f} s")
    print(f"summary: pretrain_s={pretrain:.1f} evaluation_s={evaluation:.1f} total_s={total:.1f}")


if __name__ == "__main__":
    main()
