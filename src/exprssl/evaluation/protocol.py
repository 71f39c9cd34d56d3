"""The label-efficiency benchmark: does SSL pretraining beat supervised learning on the raw genes,
and at how many labels? Run as named stages with plain inputs and outputs:

1. ``load_cohort``: the profiles, the label, and every profile without it (they only pretrain).
2. ``plan_benchmark``: K outer stratified (optionally grouped) splits, each holding out a test
   part: every other profile pretrains and every other label is "100%" (``--protocol paper``:
   0.2's disjoint pretrain / fine-tune / test parts); the label fractions (merged where they
   give the same subsets) and the approaches.
3. ``prepare_output``: the output directory is checked and a resumed run's settings compared
   before anything is written.
4. ``pretrain_stage``: per split, preprocessing fit on the pool, every SSL model pretrained once
   (cached and resumable), features and embeddings written once for the evaluation workers.
5. ``evaluate_stage``: every missing cell (split x seed x fraction x approach), in worker
   processes; the parent alone writes results.
6. ``summarize_stage``: means with two-stage bootstrap intervals, paired differences and
   verdicts (summary.csv), and the manifest. The report is written by the caller.
7. ``attribution_stage``: per-class gene attributions of the best SSL approach and the best
   baselines at each fraction, one re-fit per (split, fraction) (attributions.csv).

Each concern has its own module: ``config`` (options, presets), ``cohort`` (stage 1),
``planning`` (stage 2), ``cache`` (stage 3: the output directory and resume checks),
``features`` (derived features), ``pool`` (worker processes, progress), ``runner`` (stages 4-6
and ``run_benchmark``), ``attribution_stage`` (stage 7), ``manifest`` (provenance), ``schema``
(file columns, names, keys) and ``baselines/`` (one file per baseline). This module re-exports
the public names.

Leakage-safe by construction: test samples never enter a pretraining pool (unless
``transductive``), preprocessing and PCA are fit on the pool, tuning and early stopping use the
labelled subset only.
"""

from __future__ import annotations

from .cohort import Cohort, load_cohort
from .config import BenchmarkConfig, demo_config, paper_preset, resolve_config
from .planning import Plan, Split, plan_benchmark
from .runner import BenchmarkRun, run_benchmark

__all__ = [
    "BenchmarkConfig",
    "BenchmarkRun",
    "Cohort",
    "Plan",
    "Split",
    "demo_config",
    "load_cohort",
    "paper_preset",
    "plan_benchmark",
    "resolve_config",
    "run_benchmark",
]
