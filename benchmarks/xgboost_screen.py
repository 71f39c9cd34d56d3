"""What the gene screen saves an XGBoost fit: set-up (ANOVA F + quantising) and one boosting round
on all genes against the ``SCREEN_GENES`` screened ones, in one process, CPU time.

A seeded TCGA-shaped cohort (``exprssl.datasets.synthetic(3000, genes, 19, counts=False)``,
standardised), the benchmark's booster parameters at depth 4, one thread, at each labelled-subset
size of ``--labels``. Prints one line per size with the ratios; ratios travel between machines,
seconds do not (say the load).

    python benchmarks/xgboost_screen.py                   # 20,000 genes, 300 and 2,400 rows
    python benchmarks/xgboost_screen.py --genes 5000 --labels 200
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genes", type=int, default=20000)
    ap.add_argument("--labels", default="300,2400")
    ap.add_argument("--rounds", type=int, default=5, help="rounds timed per fit")
    args = ap.parse_args()
    import xgboost as xgb

    import exprssl
    from exprssl.evaluation import boosting, screening

    sizes = [int(s) for s in args.labels.split(",")]
    a = exprssl.datasets.synthetic(max(sizes), args.genes, 19, counts=False, seed=0)
    X = np.asarray(a.X, np.float32)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    y = a.obs["label"].astype("category").cat.codes.to_numpy()
    grid_point = {"max_depth": 4, "min_child_weight": 1.0, "learning_rate": 0.1}
    params = boosting.booster_params(grid_point, 19, 0, "cpu")
    print(f"{args.genes} genes, screen {screening.SCREEN_GENES}; load {os.getloadavg()[0]:.1f}")
    for n in sizes:
        out = {}
        for name in ("all", "screened"):
            t = time.process_time()
            genes = screening.screened(X[:n], y[:n]) if name == "screened" else slice(None)
            d = boosting.quantised(X[:n][:, genes], y[:n])
            setup = time.process_time() - t
            booster, t = xgb.Booster(params, [d]), time.process_time()
            for i in range(args.rounds):
                booster.update(d, i)
            out[name] = (setup, (time.process_time() - t) / args.rounds)
        (s0, r0), (s1, r1) = out["all"], out["screened"]
        print(
            f"n={n}: set-up {s0:.2f} -> {s1:.2f} s ({s0 / s1:.1f}x), a round {r0:.3f} -> "
            f"{r1:.3f} s ({r0 / r1:.1f}x), 100 rounds + set-up "
            f"{(s0 + 100 * r0) / (s1 + 100 * r1):.1f}x"
        )


if __name__ == "__main__":
    main()
