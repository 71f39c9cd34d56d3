"""Do two versions make the same inner-CV choices and reach the same verdicts?

Runs one benchmark configuration with this checkout and with another version (``--before``, a
``src/`` directory), each in its own process, then compares, cell by cell, the hyperparameters
``tuning.csv`` records and, per approach and fraction, the mean score and the verdict of
``summary.csv``. Pretraining is the same code in both, so any difference comes from the cells.

    python benchmarks/tuning_agreement.py --before /tmp/old/src leukemia
    python benchmarks/tuning_agreement.py --before /tmp/old/src ucec
    python benchmarks/tuning_agreement.py --before /tmp/old/src positive   # tests' controls

Prints the cells whose choice differs, the summary rows whose verdict differs, and a last line
``agreement: x of y cells chose the same params; verdicts identical at all fractions`` (or the
number that differ).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve()
CONFIGS = {
    # the bundled cohorts: leukemia subtype (classes >= 5 patients), UCEC genomic subtype
    "leukemia": dict(data="all_leukemia", label="mol.biol", min_class_size=5),
    "ucec": dict(
        data="cptac_ucec",
        label="Genomics_subtype",
        group="patient",
        preprocessing={"top_k_variance": 2000},
    ),
}
# SCARF (pretraining is the same code in both versions), every default baseline, 3 splits x 2
# label seeds x 4 fractions: 24 cells per approach, a few minutes per version on 2 cores
SMALL = dict(
    methods=["scarf"],
    splits=3,
    seeds=2,
    n_fractions=4,
    epochs=30,
    attributions=False,
    bootstrap=500,
)


def controls(labels: str, folder: Path) -> dict:
    """tests/test_controls.py's positive ("structured") or negative ("shuffled") control."""
    from exprssl.datasets import latent_programmes
    from exprssl.io import write_h5ad

    a = latent_programmes(labels=labels, unlabeled_fraction=0.5, seed=0)
    write_h5ad(a, folder / f"{labels}.h5ad")
    return dict(
        data=str(folder / f"{labels}.h5ad"),
        label="label",
        methods=["scarf"],
        baselines=["logreg", "random_encoder"],
        fractions=[0.008, 0.07],
        splits=5,
        seeds=1,
        split={"train": 0.6, "test": 0.4},
        attributions=False,
        epochs=20,
        batch_size=128,
        encoder={"hidden_dims": [256, 256], "dropout": 0.2},
        bootstrap=1000,
    )


def run(src: str, options: dict, out: Path) -> None:
    """One benchmark run in a process importing exprssl from ``src``."""
    code = (
        "import json, sys; from exprssl.evaluation.protocol import BenchmarkConfig, "
        "run_benchmark; run_benchmark(BenchmarkConfig(**json.loads(sys.argv[1])), "
        "progress=False)"
    )
    env = {**os.environ, "PYTHONPATH": src}
    options = {**options, "out": str(out)}
    subprocess.run([sys.executable, "-c", code, json.dumps(options)], env=env, check=True)


def compare(before: Path, after: Path) -> tuple[int, int, int]:
    """(cells with the same params, cells, summary rows whose verdict differs); prints each
    difference."""
    key = ["split", "seed", "fraction", "approach"]
    tb, ta = (pd.read_csv(d / "tuning.csv").set_index(key).sort_index() for d in (before, after))
    both = tb.join(ta, lsuffix="_before", rsuffix="_after", how="inner")
    same = both["params_before"] == both["params_after"]
    for idx, row in both[~same].iterrows():
        print(
            f"  choice differs {dict(zip(key, idx, strict=True))}: {row['params_before']} -> "
            f"{row['params_after']}"
        )
    sk = ["approach", "fraction"]
    sb, sa = (pd.read_csv(d / "summary.csv").set_index(sk).sort_index() for d in (before, after))
    joined = sb.join(sa, lsuffix="_b", rsuffix="_a", how="inner")
    verdicts = joined["verdict_b"].fillna("") != joined["verdict_a"].fillna("")
    for idx, row in joined.iterrows():
        mark = "VERDICT DIFFERS" if verdicts[idx] else ""
        print(
            f"  {idx[0]:>28} {idx[1]:<7} mean {row['mean_b']:.3f} -> {row['mean_a']:.3f}  "
            f"{row['verdict_b'] if isinstance(row['verdict_b'], str) else '':>14} -> "
            f"{row['verdict_a'] if isinstance(row['verdict_a'], str) else ''} {mark}"
        )
    seconds = tb["seconds"].sum(), ta["seconds"].sum()
    print(f"  cell seconds: before {seconds[0]:.0f}, after {seconds[1]:.0f}")
    return int(same.sum()), len(both), int(verdicts.sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", choices=[*CONFIGS, "positive", "negative"])
    parser.add_argument("--before", required=True, help="src/ directory of the other version")
    parser.add_argument("--after", default=str(HERE.parents[1] / "src"))
    parser.add_argument("--keep", default=None, help="keep both output directories here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.config in CONFIGS:
            options = {**CONFIGS[args.config], **SMALL}
        else:
            options = controls("structured" if args.config == "positive" else "shuffled", folder)
        for version in ("before", "after"):
            run(getattr(args, version), options, folder / version)
        same, cells, verdicts = compare(folder / "before", folder / "after")
    print(
        f"agreement: {same} of {cells} cells chose the same params; "
        + ("verdicts identical at all fractions" if not verdicts else f"{verdicts} verdicts differ")
    )


if __name__ == "__main__":
    main()
