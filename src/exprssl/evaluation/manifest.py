"""Provenance of a finished run (``manifest.json``, ``schema.Manifest``): config, versions, git
revision, dataset, pools, splits, tuning grids, preprocessing, fingerprints and timings."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from .cohort import Cohort
from .config import BenchmarkConfig
from .planning import Plan
from .schema import AttributionInfo, DatasetInfo, FullLabels, Layout, Manifest, PoolInfo


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"exprssl": __version__, "python": platform.python_version()}
    for pkg in ("torch", "lightning", "anndata", "numpy", "scikit-learn", "xgboost", "xgboost-cpu"):
        try:  # xgboost-cpu (the default on Linux and Windows) provides the xgboost import
            out.setdefault(pkg.removesuffix("-cpu"), md.version(pkg))
        except md.PackageNotFoundError:
            pass
    return out


def _git_revision() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(
    cfg: BenchmarkConfig,
    cohort: Cohort,
    plan: Plan,
    out: Path,
    timings: dict,
    jobs: int,
    attributions: AttributionInfo | None = None,
    models: list = (),
    estimate: dict | None = None,
) -> Manifest:
    """Build the run's ``Manifest`` from what it used, and write it atomically (the last file
    of a run before the report). ``estimate``: the plan's estimate beside the actual seconds
    (``estimate.RunPlan.record``)."""
    from ..preprocessing import Preprocessor
    from .baselines import all_grids
    from .tuning import describe_grids

    prep = Preprocessor.load(Layout(out).preprocessor(0))
    manifest = Manifest(
        config=asdict(cfg),
        versions=_versions(),
        git_revision=_git_revision(),
        dataset=_describe_dataset(cfg, cohort),
        pool=_describe_pool(cfg, cohort, plan),
        test_per_class={
            str(c): float(np.mean([(cohort.y[s.test] == i).sum() for s in plan.splits]))
            for i, c in enumerate(cohort.classes)
        },
        splits=len(plan.splits),
        split_sizes={
            k: int(np.mean([len(getattr(s, k)) for s in plan.splits]))
            for k in ("pretrain", "finetune", "test", "pool")
        },
        full_labels=describe_full_labels(cfg, cohort, plan),
        fractions=list(plan.fractions),
        merged_fractions={str(k): v for k, v in plan.merged.items()},
        seeds=list(range(cfg.seeds)),
        tuning={"on": cfg.tune, "grids": describe_grids(all_grids())},
        preprocessing=prep.describe(),
        n_features=len(prep.genes_),
        fingerprint=cohort.fingerprint,
        models={m.name: m.describe() for m in models},
        attributions=attributions,
        jobs=jobs,
        timings_s={k: round(v, 2) for k, v in timings.items()},
        estimate=estimate or {},
    )
    manifest.write(Layout(out).manifest)
    return manifest


def _describe_dataset(cfg: BenchmarkConfig, cohort: Cohort) -> DatasetInfo:
    return DatasetInfo(
        source=cfg.data,
        n_samples=int(cohort.adata.n_obs),
        n_genes=int(cohort.adata.n_vars),
        label=cfg.label,
        classes={str(c): int((cohort.y == i).sum()) for i, c in enumerate(cohort.classes)},
        dropped_classes=cohort.dropped,
        dropped_rule=cohort.dropped_rule if cohort.dropped else "",
        n_without_label=cohort.n_missing,
        description=cohort.adata.uns.get("dataset", {}).get("description", ""),
    )


def _describe_pool(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan) -> PoolInfo:
    s = plan.splits[0]
    labelled = (
        "labelled training profiles, without their labels"
        if cfg.protocol == "default"
        else "labelled profiles of the pretraining part"
    )
    parts = {
        labelled: int(round(np.mean([len(p.pretrain) for p in plan.splits]))),
        "profiles without the label": cohort.n_missing,
        "profiles of classes too small for the task": int(sum(cohort.dropped.values())),
    }
    if cfg.transductive:
        parts["test profiles, without their labels (transductive)"] = int(len(s.test))
    for name, src, cov in cohort.sources:
        parts[f"{name}, with {100 * cov:.0f}% of the cohort's genes"] = int(src.n_obs)
    from .scaling import DESCRIPTIONS

    return PoolInfo(
        scaling=DESCRIPTIONS[cfg.pool_scaling] if cohort.sources else None,
        # per split, as the Protocol line's sizes: a mean over splits (grouped splits differ)
        size=int(
            round(np.mean([len(p.pool) for p in plan.splits]))
            + sum(src.n_obs for _, src, _ in cohort.sources)
        ),
        parts=parts,
        n_genes=int(cohort.adata.n_vars),
    )


def describe_full_labels(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan) -> FullLabels:
    """What "100%" of the labels is: the labelled profiles a split's label fractions are drawn
    from (mean over splits, and per class), and which part of the cohort they are."""
    counts = np.array(
        [np.bincount(cohort.y[s.finetune], minlength=len(cohort.classes)) for s in plan.splits]
    )
    return FullLabels(
        mean=float(counts.sum(1).mean()),
        per_class={str(c): float(v) for c, v in zip(cohort.classes, counts.mean(0), strict=True)},
        of="every labelled profile outside the test part"
        if cfg.protocol == "default"
        else "the fine-tune part of the labelled profiles (paper protocol)",
    )
