"""Cell time per approach, this checkout against another version, on a TCGA-shaped cohort.

One benchmark cell is one approach tuned by inner CV on one labelled subset and scored on the
test part. This script times the cells that cost a paper-scale run its hours (logistic
regression and the elastic net on the genes, XGBoost, the MLP baseline; SSL fine-tuning trains
through the MLP's code path) on a seeded synthetic cohort (default: n = 3,000 profiles x 20,000
genes, 19 classes, ``exprssl.datasets.synthetic(..., counts=False, seed=0)``), preprocessed as
the benchmark does, one split (80% train / 20% test) and one label seed, at the labelled-subset
sizes ``--labels``. Each cell runs in its own single-threaded process (as a benchmark worker),
the two versions interleaved and their order alternated, so both see the same machine state.

    python benchmarks/tuning_speed.py --before /path/to/old/src           # n = 3,000 x 20,000
    python benchmarks/tuning_speed.py --before /tmp/old/src --genes 2000 --labels 300

Prints one line per cell (seconds before and after, their ratio, the chosen hyperparameters,
balanced accuracy on the test part) and a last ``summary:`` line with the total ratio. Ratios
travel between machines, seconds do not; say the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

APPROACHES = ("logreg", "elasticnet", "xgboost", "mlp")
HERE = Path(__file__).resolve()


def cohort(folder: Path, n: int, genes: int, classes: int, seed: int) -> None:
    """The preprocessed cohort and one split's positions, as .npy files the cells load."""
    from exprssl.datasets import synthetic
    from exprssl.preprocessing import Preprocessor
    from exprssl.splits import split_indices

    a = synthetic(n, genes, classes, counts=False, seed=seed)
    y = a.obs["label"].astype("category").cat.codes.to_numpy().astype(np.int64)
    X = np.asarray(a.X, dtype=np.float32)
    parts = split_indices(y, {"train": 0.8, "test": 0.2}, seed=seed)
    train, test = parts["train"], parts["test"]
    prep = Preprocessor().fit(X[train], genes=list(a.var_names))  # fit on the pool, as a run
    np.save(folder / "X.npy", prep.transform(X, list(a.var_names)).astype(np.float32))
    np.savez(folder / "split.npz", y=y, train=train, test=test)


def cell(folder: Path, approach: str, n_labels: int, seed: int) -> dict:
    """One cell in this process (whichever exprssl PYTHONPATH names): seconds, chosen
    hyperparameters and test balanced accuracy."""
    from exprssl.evaluation.baselines import get_baseline
    from exprssl.evaluation.cells import GroupJob
    from exprssl.evaluation.metrics import score
    from exprssl.evaluation.planning import carve_validation
    from exprssl.evaluation.tuning import inner_folds
    from exprssl.splits import label_fraction_subsets
    from exprssl.threads import limit_threads

    X = np.load(folder / "X.npy", mmap_mode="r")
    s = np.load(folder / "split.npz")
    y, train, test = s["y"], s["train"], s["test"]
    fraction = n_labels / len(train)
    lab = train[label_fraction_subsets(y[train], [fraction], seed=seed)[fraction]]
    job = GroupJob(
        split=0,
        seed=seed,
        fraction=fraction,
        lab=lab,
        val=lab[carve_validation(y[lab], seed)],
        test=test,
        y=y,
        n_classes=int(y.max()) + 1,
        approaches=[],
        features={},
        encoder={"hidden_dims": [256, 256, 256, 256], "dropout": 0.1},
    )
    baseline = get_baseline(approach)
    folds = inner_folds(y[lab], seed, baseline.max_folds)
    F_lab, F_test = np.asarray(X[lab]), np.asarray(X[test])
    with limit_threads(1):
        import torch

        torch.set_num_threads(1)
        t0, c0 = time.perf_counter(), time.process_time()
        proba, params = baseline.fit_predict(F_lab, y[lab], F_test, folds, job)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "params": {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in params.items()},
        "balanced_accuracy": score(y[test], np.asarray(proba).argmax(1), "balanced_accuracy"),
        "n_labelled": len(lab),
    }


def run_cell(src: str, folder: Path, approach: str, n_labels: int, seed: int) -> dict:
    """``cell`` in a fresh single-threaded process importing exprssl from ``src``."""
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["OPENBLAS_NUM_THREADS"] = "1"
    args = [sys.executable, str(HERE), "--cell", str(folder), approach, str(n_labels), str(seed)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{approach} at {n_labels} labels ({src}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="src/ directory of the other version (required)")
    parser.add_argument("--after", default=str(HERE.parents[1] / "src"))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--labels", default="300,2400", help="labelled-subset sizes")
    parser.add_argument("--approaches", default=",".join(APPROACHES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        folder, approach, n_labels, seed = args.cell
        print(json.dumps(cell(Path(folder), approach, int(n_labels), int(seed))))
        return
    if not args.before:
        parser.error("--before is required: the src/ directory of the version to compare with")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cohort(folder, args.n, args.genes, args.classes, args.seed)
        print(f"cohort: {args.n} x {args.genes}, {args.classes} classes; load {os.getloadavg()}")
        totals = {"before": 0.0, "after": 0.0}
        for k, (n_labels, approach) in enumerate(
            (int(n), a) for n in args.labels.split(",") for a in args.approaches.split(",")
        ):
            order = ("before", "after") if k % 2 == 0 else ("after", "before")
            src = {"before": args.before, "after": args.after}
            r = {v: run_cell(src[v], folder, approach, n_labels, args.seed) for v in order}
            totals["before"] += r["before"]["seconds"]
            totals["after"] += r["after"]["seconds"]
            print(
                f"{approach:>10} labels={r['after']['n_labelled']:>5}"
                f"  before {r['before']['seconds']:8.1f} s  after {r['after']['seconds']:8.1f} s"
                f"  ratio {r['before']['seconds'] / r['after']['seconds']:5.2f}"
                f"  (cpu {r['before']['cpu_seconds'] / r['after']['cpu_seconds']:5.2f})"
                f"  params {'same' if r['before']['params'] == r['after']['params'] else 'DIFFER'}"
                f" {r['before']['params']} -> {r['after']['params']}"
                f"  bal.acc {r['before']['balanced_accuracy']:.3f} -> "
                f"{r['after']['balanced_accuracy']:.3f}  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print(
        f"summary: before_s={totals['before']:.1f} after_s={totals['after']:.1f} "
        f"ratio={totals['before'] / totals['after']:.2f}"
    )


if __name__ == "__main__":
    main()
