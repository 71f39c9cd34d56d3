"""Splits are stratified, grouped, deterministic; label-fraction subsets are nested."""

from __future__ import annotations

import numpy as np
import pytest

from exprssl.errors import ConfigError
from exprssl.splits import (
    drop_rare_classes,
    label_fraction_subsets,
    log_fraction_grid,
    split_indices,
)


@pytest.fixture
def labels():
    return np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)


def test_parts_disjoint_cover_and_stratified(labels):
    parts = split_indices(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    allidx = np.concatenate(list(parts.values()))
    assert len(allidx) == len(labels) == len(set(allidx))
    for name, frac in zip(("train", "val", "test"), (0.6, 0.2, 0.2), strict=True):
        for cls, n in (("a", 60), ("b", 30), ("c", 10)):
            assert (labels[parts[name]] == cls).sum() == round(frac * n)


def test_deterministic_from_seed(labels):
    a = split_indices(labels, {"x": 0.5, "y": 0.5}, seed=3)
    b = split_indices(labels, {"x": 0.5, "y": 0.5}, seed=3)
    c = split_indices(labels, {"x": 0.5, "y": 0.5}, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])


def test_groups_never_cross_parts(labels):
    groups = np.repeat(np.arange(50), 2)  # 2 samples per patient, patients nested in classes
    parts = split_indices(
        labels, {"pretrain": 0.6, "finetune": 0.2, "test": 0.2}, groups=groups, seed=1
    )
    seen = [set(groups[idx]) for idx in parts.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert all(set(labels[idx]) == {"a", "b", "c"} for idx in parts.values())


def test_groups_of_unequal_size_split_by_samples_not_groups():
    """One 40-sample study and twenty 1-sample studies per class: dealing groups by count puts the
    big study in the test part about one seed in five (test = 2/3 of the class). By size, the
    big study always lands where it fits and the parts stay near 60/20/20 of the samples."""
    y, groups = [], []
    for cls in ("a", "b"):
        y += [cls] * 60
        groups += [f"{cls}-big"] * 40 + [f"{cls}-small{i}" for i in range(20)]
    y, groups = np.array(y), np.array(groups)
    for seed in range(10):
        parts = split_indices(
            y, {"pretrain": 0.6, "finetune": 0.2, "test": 0.2}, groups=groups, seed=seed
        )
        sizes = {k: len(v) for k, v in parts.items()}
        assert (
            sizes["pretrain"] >= 80 and 16 <= sizes["finetune"] <= 24 and 16 <= sizes["test"] <= 24
        ), sizes
        seen = [set(groups[idx]) for idx in parts.values()]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
        assert all(set(y[idx]) == {"a", "b"} for idx in parts.values())
    a = split_indices(y, {"x": 0.5, "y": 0.5}, groups=groups, seed=1)
    b = split_indices(y, {"x": 0.5, "y": 0.5}, groups=groups, seed=2)
    assert not np.array_equal(a["x"], b["x"])  # still random among the small studies


def test_group_spanning_classes_goes_with_its_majority_class():
    # patient p0 has 2 "a" samples and 1 "b": all three land in one part, dealt as an "a" group
    y = np.array(["a", "b", "a"] + ["a"] * 9 + ["b"] * 9)
    groups = np.array(["p0"] * 3 + [f"q{i}" for i in range(18)])
    parts = split_indices(y, {"x": 0.5, "y": 0.5}, groups=groups, seed=0)
    part_of = {i: k for k, idx in parts.items() for i in idx}
    assert part_of[0] == part_of[1] == part_of[2]
    assert sum(len(v) for v in parts.values()) == 21
    # a tie goes to the label seen first in the group: "t" is a "b" group, so "b" has 2 groups
    groups = np.array(["t", "t", "1", "2", "3", "4"])
    split_indices(np.array(["b", "a", "a", "a", "a", "b"]), {"x": 0.5, "y": 0.5}, groups=groups)
    with pytest.raises(ConfigError, match="class 'b' has 1 groups"):
        split_indices(np.array(["a", "b", "a", "a", "a", "b"]), {"x": 0.5, "y": 0.5}, groups=groups)


def test_large_split_is_fast():
    """Vectorised: 200,000 samples (one group per 3) split in well under a second, not minutes."""
    import time

    rng = np.random.default_rng(0)
    y = rng.integers(0, 30, 200_000).astype(str)
    t = time.perf_counter()
    split_indices(y, {"a": 0.6, "b": 0.2, "c": 0.2}, seed=0)
    split_indices(
        y, {"a": 0.6, "b": 0.2, "c": 0.2}, groups=rng.integers(0, 66_000, 200_000), seed=0
    )
    assert time.perf_counter() - t < 10


def test_rare_class_is_a_clear_error(labels):
    y = np.append(labels, ["d", "d"])
    with pytest.raises(ConfigError, match=r"class 'd' has 2 samples, fewer than the 3 parts"):
        split_indices(y, {"train": 0.6, "val": 0.2, "test": 0.2})
    mask, dropped = drop_rare_classes(y, 3)
    assert dropped == {"d": 2} and mask.sum() == 100
    with pytest.raises(ConfigError, match="sum to 1"):
        split_indices(labels, {"a": 0.5, "b": 0.6})


def test_fraction_subsets_nested_stratified_min_one(labels):
    subsets = label_fraction_subsets(labels, [0.01, 0.1, 0.5, 1.0], seed=2)
    fr = sorted(subsets)
    for p, q in zip(fr[:-1], fr[1:], strict=True):
        assert set(subsets[p]) <= set(subsets[q])
    assert all((labels[subsets[0.01]] == c).sum() == 1 for c in "abc")  # >= 1 per class
    s = subsets[0.5]
    assert [(labels[s] == c).sum() for c in "abc"] == [30, 15, 5]
    assert np.array_equal(subsets[1.0], np.arange(len(labels)))
    again = label_fraction_subsets(labels, [0.1], seed=2)
    assert np.array_equal(again[0.1], subsets[0.1])


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_fraction_outside_unit_interval(labels, bad):
    with pytest.raises(ConfigError, match=f"outside|in \\(0, 1\\], got {bad}"):
        label_fraction_subsets(labels, [0.5, bad])


def test_log_grid():
    g = log_fraction_grid(100, 4, n_points=6)
    assert g[0] == pytest.approx(0.04) and g[-1] == 1.0 and g == sorted(g)
    sizes = [int(np.ceil(p * 100)) for p in g]
    assert len(set(sizes)) == len(sizes)
