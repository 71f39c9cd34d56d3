"""Stage 2, the plan: K outer stratified (optionally grouped) splits with their pretraining
pools, the label-fraction grid (fractions giving the same subsets merged), the approaches, and
the validation part each labelled subset carves out for early stopping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, RareClassError
from ..methods import check_model_memory
from ..splits import check_repeats, label_fraction_subsets, log_fraction_grid, split_indices
from ..validation import check_top_genes
from .baselines import get_baseline
from .cells import Approach
from .cohort import Cohort
from .config import BenchmarkConfig
from .models import check_model_names
from .ssl_heads import SSL_HEADS


@dataclass
class Split:
    """One outer split, as cohort positions. Default protocol: ``pretrain`` and ``finetune`` are
    both every non-test labelled profile (the labels' "100%"); paper protocol: disjoint parts."""

    index: int
    pretrain: np.ndarray  # the labelled part of the pool
    finetune: np.ndarray  # the labelled profiles the label fractions are drawn from
    test: np.ndarray
    pool: np.ndarray  # what pretraining uses: pretrain part + profiles without the label


@dataclass
class Plan:
    splits: list[Split]
    fractions: list[float]
    merged: dict[
        float, list[float]
    ]  # a kept fraction -> the requested ones giving the same subsets
    approaches: list[Approach]


def plan_benchmark(cfg: BenchmarkConfig, cohort: Cohort) -> Plan:
    """The run's plan: ``cfg.splits`` outer splits (stratified, grouped when asked) with each
    split's pretraining pool, the merged fraction grid and the approaches.

    Parameters
    ----------
    cfg
        A resolved config (``resolve_config``: splits and seeds decided).
    cohort
        The loaded cohort.

    Returns
    -------
    Plan
    """
    lab = cohort.labelled
    unlabeled = np.flatnonzero(cohort.y < 0)
    splits = []
    for k in range(cfg.splits):
        try:
            parts = split_indices(
                cohort.classes[cohort.y[lab]],
                cfg.split,
                seed=cfg.split_seed + k,
                groups=None if cohort.groups is None else cohort.groups[lab],
            )
        except RareClassError as e:
            raise ConfigError(
                f"{e}: --min-class-size N (min_class_size in a config) drops classes smaller "
                "than N; left at 0, the classes the split cannot deal only pretrain"
            ) from None
        if k == 0:  # the classes can be split: now bound the options by the data, before any work
            check_against_data(cfg, cohort)
        parts = {name: lab[idx] for name, idx in parts.items()}
        if cfg.protocol == "default":  # every non-test profile pretrains, every label fine-tunes
            parts = {"pretrain": parts["train"], "finetune": parts["train"], "test": parts["test"]}
        pool = np.union1d(parts["pretrain"], unlabeled)
        if cfg.transductive:
            pool = np.union1d(pool, parts["test"])
        splits.append(Split(k, parts["pretrain"], parts["finetune"], parts["test"], pool))
    fractions, merged = _fraction_grid(cfg, cohort, splits)
    encoders = [*cfg.methods, *check_model_names(cfg)]  # per-split SSL methods, given models
    approaches = [Approach(m, "ssl", h) for m in encoders for h in SSL_HEADS]
    approaches += [Approach(b, get_baseline(b).kind, b) for b in cfg.baselines]
    return Plan(splits, fractions, merged, approaches)


def check_against_data(cfg: BenchmarkConfig, cohort: Cohort) -> None:
    """Options bounded by the cohort they meet: splits and seeds by the smallest class (no run
    that re-deals the same profiles for days), top genes by the genes, every model's size by
    the free memory."""
    check_repeats(cfg.splits, cfg.seeds, cohort.classes[cohort.y[cohort.labelled]])
    top = cfg.preprocessing.get("top_k_variance")
    check_top_genes(top, cohort.adata.n_vars, cfg.data)
    n_features = min(top or cohort.adata.n_vars, cohort.adata.n_vars)
    for method in cfg.methods:
        check_model_memory(
            method, n_features, {**cfg.encoder, **cfg.method_options.get(method, {})}
        )


def _fraction_grid(cfg, cohort, splits) -> tuple[list[float], dict[float, list[float]]]:
    """The label fractions, merged where they label the same number of samples of every class in
    every split (the subsets are then identical: a repeated column says nothing)."""
    y_ft = cohort.y[splits[0].finetune]
    requested = sorted(
        cfg.fractions or log_fraction_grid(len(y_ft), len(np.unique(y_ft)), cfg.n_fractions)
    )
    label_fraction_subsets(y_ft, requested, seed=0)  # validates the fractions
    counts = [np.bincount(cohort.y[s.finetune], minlength=len(cohort.classes)) for s in splits]
    by_sizes: dict[tuple, list[float]] = {}
    for p in requested:
        sizes = tuple(
            tuple(np.minimum(c, np.maximum(1, np.ceil(p * c))).astype(int)) for c in counts
        )
        by_sizes.setdefault(sizes, []).append(float(p))
    merged = {max(group): sorted(group) for group in by_sizes.values()}
    return sorted(merged), {k: v for k, v in merged.items() if len(v) > 1}


def carve_validation(y: np.ndarray, seed: int, frac: float = 0.2) -> np.ndarray:
    """Positions (into ``y``) of ~20% per class held out for early stopping of the torch heads,
    when every class has >= 2 labelled samples; empty otherwise."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        return np.array([], dtype=int)
    rng = np.random.default_rng(seed + 7919)
    val = [
        rng.permutation(np.flatnonzero(y == c))[: max(1, int(round(frac * n)))]
        for c, n in zip(classes, counts, strict=True)
    ]
    return np.sort(np.concatenate(val))
