"""Deterministic, stratified, optionally grouped splits and nested label-fraction subsets."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, RareClassError

# the parts of a benchmark's ``split`` per protocol: the default tests on one part and trains
# (pretraining pool and every label) on the rest; the paper protocol (0.2's default) keeps
# disjoint parts. Here, not in the benchmark's config, so that `exprssl info` can say what a run
# would do without importing the training stack.
SPLIT_PARTS = {"default": ("train", "test"), "paper": ("pretrain", "finetune", "test")}
DEFAULT_SPLITS = {
    "default": {"train": 0.8, "test": 0.2},
    "paper": {"pretrain": 0.6, "finetune": 0.2, "test": 0.2},
}

# a claim needs at least this many test samples per class and split, on average
# (``evaluation.stats.too_small``): what `exprssl info` warns about before a run
MIN_TEST_PER_CLASS = 3.0


def default_outer_splits(n_labelled: int) -> int:
    """Outer splits when none are asked for: five below 1,000 labelled profiles (the intervals
    need the test-set variance of several splits), one above (the test set alone is large)."""
    return 5 if n_labelled < 1000 else 1


def _labels(labels) -> np.ndarray:
    return np.asarray(pd.Series(labels).astype(str).to_numpy())


def drop_rare_classes(labels, min_count: int) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of samples whose class has at least ``min_count`` members, and the dropped
    classes."""
    y = _labels(labels)
    counts = pd.Series(y).value_counts()
    dropped = {str(k): int(v) for k, v in counts.items() if v < min_count}
    return ~np.isin(y, list(dropped)), dropped


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Split ``n`` items into parts by largest remainder, every part >= 1 when n allows."""
    raw = fractions * n
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes))[: n - sizes.sum()]:
        sizes[i] += 1
    for i in np.flatnonzero(sizes == 0):  # take from the largest part so each part sees the class
        j = int(np.argmax(sizes))
        if sizes[j] > 1:
            sizes[j] -= 1
            sizes[i] += 1
    return sizes


def _deal_groups(sizes: np.ndarray, frac: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Part of each group (given in shuffled order) such that each part gets close to its
    fraction of the samples rather than of the groups: studies range from a handful of samples
    to thousands. One of the smallest groups opens each part (every part sees the class); the
    rest go largest first to the part furthest below its share."""
    n_parts = len(frac)
    part = np.empty(len(sizes), dtype=int)
    order = np.argsort(sizes, kind="stable")  # ties keep the shuffled order: random among equals
    part[order[:n_parts]] = rng.permutation(n_parts)
    deficit = frac * sizes.sum() - np.bincount(
        part[order[:n_parts]], weights=sizes[order[:n_parts]], minlength=n_parts
    )
    for unit in order[n_parts:][::-1]:  # one step per group of the class
        p = int(np.argmax(deficit))
        part[unit] = p
        deficit[p] -= sizes[unit]
    return part


def split_indices(
    labels, parts: Mapping[str, float], *, groups=None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Stratified split of sample positions into named parts (e.g. pretrain / finetune / test).

    Within each class, samples are shuffled with ``seed`` and dealt to the parts by their
    fractions, so every class appears in every part. With ``groups`` (patients, studies), whole
    groups are dealt so that no group ever crosses parts and each part gets close to its
    fraction of the samples (not of the groups) as group sizes allow. A group spanning classes
    is assigned by its most frequent class (a tie: the label seen first in it). Vectorised:
    200,000 samples split in a fraction of a second. Returns sorted index arrays.
    """
    y = _labels(labels)
    names = list(parts)
    frac = np.array([float(parts[k]) for k in names])
    if (frac <= 0).any() or not math.isclose(frac.sum(), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must be positive and sum to 1, got {dict(parts)}")
    rng = np.random.default_rng(seed)
    classes, y_code = np.unique(y, return_inverse=True)
    unit_of_sample, unit_class, unit_order = _units(y_code, len(classes), groups)
    what = "samples" if groups is None else "groups"
    unit_size = np.bincount(unit_of_sample)
    part_of_unit = np.full(len(unit_class), -1)
    for c, cls in enumerate(classes):
        members = unit_order[unit_class[unit_order] == c]
        if len(members) == 0:  # every sample of the class sits in groups led by another class
            continue
        if len(members) < len(names):
            raise RareClassError(
                f"class '{cls}' has {len(members)} {what}, fewer than the {len(names)} parts "
                f"({', '.join(names)}) the split needs; drop rare classes first "
                f"(e.g. a minimum class size)"
            )
        members = members[rng.permutation(len(members))]
        if groups is None:
            part_of_unit[members] = np.repeat(np.arange(len(names)), _allocate(len(members), frac))
        else:
            part_of_unit[members] = _deal_groups(unit_size[members], frac, rng)
    part_of_sample = part_of_unit[unit_of_sample]
    return {name: np.flatnonzero(part_of_sample == i) for i, name in enumerate(names)}


def _units(y_code: np.ndarray, n_classes: int, groups) -> tuple[np.ndarray, ...]:
    """What a split deals: per sample its unit (itself, or its group), per unit its class, and
    the units' dealing order. A group's class is its most frequent label (ties: the label seen
    first in the group)."""
    if groups is None:  # every sample its own unit, ordered by the string of its position
        unit_of_sample = np.arange(len(y_code))
        return unit_of_sample, y_code, np.argsort(unit_of_sample.astype(str), kind="stable")
    g = _labels(groups)
    if len(g) != len(y_code):
        raise ConfigError(f"{len(g)} group values for {len(y_code)} samples")
    _, unit_of_sample = np.unique(g, return_inverse=True)  # units in sorted group-name order
    pair, first, count = np.unique(
        unit_of_sample * n_classes + y_code, return_index=True, return_counts=True
    )
    pick = np.lexsort((first, -count, pair // n_classes))
    pair_unit = (pair // n_classes)[pick]
    unit_class = (pair % n_classes)[pick][np.r_[True, np.diff(pair_unit) != 0]]
    return unit_of_sample, unit_class, np.arange(unit_of_sample.max() + 1)


def too_small_for_split(labels, n_parts: int, *, groups=None) -> dict[str, int]:
    """Classes that ``split_indices`` cannot deal into ``n_parts`` parts (fewer samples, or
    groups, than parts), with their numbers of samples, largest first. With groups, a group
    goes with its most frequent class: once a class leaves, its groups may lead another class
    into the same shortage, so this repeats until every class left can be split."""
    y = _labels(labels)
    g = None if groups is None else _labels(groups)
    left = np.ones(len(y), dtype=bool)
    small: dict[str, int] = {}
    while left.any():
        classes, y_code = np.unique(y[left], return_inverse=True)
        _, unit_class, _ = _units(y_code, len(classes), None if g is None else g[left])
        units = np.bincount(unit_class, minlength=len(classes))
        short = classes[(units > 0) & (units < n_parts)]
        if not len(short):
            break
        small.update({str(c): int((y == c).sum()) for c in short})
        left &= ~np.isin(y, short)
    return dict(sorted(small.items(), key=lambda kv: (-kv[1], kv[0])))


def part_sizes(n: int, parts: Mapping[str, float]) -> dict[str, int]:
    """How many of a class's ``n`` samples each part gets (no groups): ``split_indices`` deals
    exactly these numbers in every split."""
    sizes = _allocate(n, np.array([float(v) for v in parts.values()]))
    return {name: int(k) for name, k in zip(parts, sizes, strict=True)}


def label_fraction_subsets(
    labels, fractions: Sequence[float], *, seed: int = 0, min_per_class: int = 1
) -> dict[float, np.ndarray]:
    """Nested, stratified subsets: for p1 < p2, subset(p1) is contained in subset(p2).

    Each class is shuffled once with ``seed``; the subset for fraction p takes the first
    ceil(p * n_class) of it (at least ``min_per_class``), so nesting and per-class proportions
    hold by construction.
    """
    fr = [float(p) for p in fractions]
    bad = [p for p in fr if not 0 < p <= 1]
    if bad:
        raise ConfigError(f"label fractions must be in (0, 1], got {bad[0]}")
    y = _labels(labels)
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(np.flatnonzero(y == c)) for c in sorted(set(y))}
    out = {}
    for p in sorted(set(fr)):
        take = [
            order[: min(len(order), max(min_per_class, math.ceil(p * len(order))))]
            for order in orders.values()
        ]
        out[p] = np.sort(np.concatenate(take))
    return out


def log_fraction_grid(n_labelled: int, n_classes: int, n_points: int = 6) -> list[float]:
    """Log-spaced fractions from ~one sample per class up to 1.0, without duplicate subset sizes."""
    if n_labelled < 1:
        raise ConfigError("no labelled samples to build a fraction grid from")
    lo = min(1.0, max(n_classes / n_labelled, 0.01))
    grid = np.geomspace(lo, 1.0, n_points)
    out, seen = [], set()
    for p in grid:
        size = math.ceil(p * n_labelled)
        if size not in seen:
            seen.add(size)
            out.append(float(round(p, 4)))
    out[-1] = 1.0
    return out


# beyond this many outer splits or label subsets the run time grows and the intervals do not
MAX_REPEATS = 100
# this many outer splits are always allowed (the default is 5), whatever the class sizes
FEW_SPLITS = 10


def check_repeats(splits: int, seeds: int, labels) -> None:
    """Refuse more outer splits than the smallest class has labelled profiles, beyond
    ``FEW_SPLITS`` (more re-deal the same few profiles and only multiply the run time:
    ``--splits 1000`` on 40 samples would run for days), and more than ``MAX_REPEATS`` splits
    or label subsets. Checked before any work."""
    counts = pd.Series(_labels(labels)).value_counts()
    smallest, cls = int(counts.min()), str(counts.idxmin())
    limit = min(MAX_REPEATS, max(FEW_SPLITS, smallest))
    if splits > limit:
        raise ConfigError(
            f"splits {splits} is more than this cohort supports: at most {limit} (one per labelled "
            f"profile of the smallest class, '{cls}' with {smallest}, at least {FEW_SPLITS}, at "
            f"most {MAX_REPEATS}); more splits re-deal the same profiles and only multiply the run "
            "time"
        )
    if seeds > MAX_REPEATS:
        raise ConfigError(
            f"seeds {seeds} is more than {MAX_REPEATS} label subsets per split; use --seeds <= "
            f"{MAX_REPEATS}"
        )
