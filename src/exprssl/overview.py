"""What ``exprssl info`` says about a cohort: its shape and scale, how many samples each label
column labels, and what a benchmark on the likely label would do with its classes under the
default protocol (which only pretrain, which get few test samples), ending with the command
that runs it. Imports no training code: ``info`` answers in the time it takes to read the data."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from .io import require_label, summarize
from .splits import (
    DEFAULT_SPLITS,
    MIN_TEST_PER_CLASS,
    default_outer_splits,
    part_sizes,
    too_small_for_split,
)
from .utils import plural


def describe(
    adata: ad.AnnData,
    data: str,
    label: str | None = None,
    *,
    labels: str | None = None,
    label_id_column: str | None = None,
    orientation: str = "auto",
) -> dict[str, Any]:
    """``io.summarize`` with what the features are (genes, probe sets), and the benchmark a user
    would run on ``label`` (None: the dataset's usual label, or the first label column): its
    splits, the classes too small for them, and the command (``data``, ``labels``,
    ``label_id_column`` and ``orientation`` as the user gave them)."""
    s = summarize(adata)
    s["feature_kind"] = _feature_kind(adata)
    column, why = _task_column(adata, s, label)
    if column is None:
        s["task"] = None
        return s
    counts = s["label_columns"].get(column)
    if counts is None:  # not a label column info lists: one clear line when it cannot be one
        y = require_label(adata, column).dropna()
        counts = {str(k): int(v) for k, v in y.value_counts().items()}
    s["task"] = {"label": column, "chosen": why, **_task(counts)}
    if s["task"]["classes"] >= 2:
        s["task"]["command"] = _command(data, column, labels, label_id_column, orientation)
    return s


def _bundled(adata: ad.AnnData) -> dict[str, Any]:
    """The registry entry of a bundled dataset ({} for a file)."""
    from .datasets import REGISTRY

    source = str(adata.uns.get("exprssl", {}).get("source", ""))
    return (
        REGISTRY.get(source.removeprefix("bundled:"), {}) if source.startswith("bundled:") else {}
    )


def _feature_kind(adata: ad.AnnData) -> str:
    """'probe sets' for a bundled microarray dataset (as ``exprssl datasets`` says), else
    'genes'."""
    return _bundled(adata).get("feature_kind", "genes")


def _task_column(adata: ad.AnnData, s: dict, label: str | None) -> tuple[str | None, str]:
    """The label column a benchmark would use, and why."""
    if label is not None:
        return label, "chosen with --label"
    usual = _bundled(adata).get("default_label")
    if usual in s["label_columns"]:
        return usual, "the dataset's usual label; another with --label COLUMN"
    for column in s["label_columns"]:
        return column, "the first label column; another with --label COLUMN"
    return None, ""


def _task(counts: dict[str, int]) -> dict[str, Any]:
    """Under the default protocol: the outer splits, the classes the split cannot deal (they
    would only pretrain) and the test samples each other class gets per split."""
    parts = DEFAULT_SPLITS["default"]
    y = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    small = too_small_for_split(y, len(parts))
    kept = {c: n for c, n in counts.items() if c not in small}
    test = {c: part_sizes(n, parts)["test"] for c, n in kept.items()}
    n_labelled = sum(kept.values())
    return {
        "labelled": int(sum(counts.values())),
        "classes": len(kept),
        "splits": default_outer_splits(n_labelled),
        "split": dict(parts),
        "test_per_split": int(sum(test.values())),
        "too_small": small,
        "min_class_size": len(parts),
        "few_test": {
            c: k for c, k in sorted(test.items(), key=lambda kv: kv[1]) if k < MIN_TEST_PER_CLASS
        },
        "min_test_per_class": MIN_TEST_PER_CLASS,
    }


def _command(data, label, labels, label_id_column, orientation) -> str:
    """The benchmark command, quoted for a POSIX shell, into a directory named after the data
    and the label."""
    stem = Path(str(data)).name.split(".")[0] or "cohort"
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}_{label}").strip("_")
    args = ["exprssl", "benchmark", "--data", str(data), "--label", label]
    if labels:
        args += ["--sample-sheet", str(labels)]
    if label_id_column:
        args += ["--label-id-column", label_id_column]
    if orientation != "auto":
        args += ["--orientation", orientation]
    return shlex.join([*args, "--out", out])


def info_lines(s: dict[str, Any], data: str) -> list[str]:
    """``describe``'s answer as the plain lines ``exprssl info`` prints."""
    n = s["n_samples"]
    lines = [f"{data}: {n} samples x {s['n_genes']} {s.get('feature_kind', 'genes')}"]
    if s["orientation"]:
        lines.append(f"orientation: {s['orientation']}")
    lines.append(
        f"values: min {s['min']:.4g}, median {s['median']:.4g}, max {s['max']:.4g}, "
        f"{100 * s['fraction_zeros']:.1f}% zeros; {s.get('scale_description', s['scale'])}"
    )
    for col, counts in s.get("label_columns", {}).items():
        parts = ", ".join(f"{k}: {v}" for k, v in counts.items())  # '1: 27', not '1 27'
        labelled = sum(counts.values())
        missing = f", {labelled} of {n} labelled" if labelled < n else ""
        lines.append(f"label {col} ({len(counts)} classes{missing}): {parts}")
    for col, r in s.get("numeric_columns", {}).items():
        lines.append(
            f"numeric {col}: {r['min']:.4g} to {r['max']:.4g}, median {r['median']:.4g} "
            f"({r['n']} of {n} samples)"
        )
    return lines + task_lines(s.get("task"), n)


def task_lines(task: dict[str, Any] | None, n_samples: int) -> list[str]:
    """The benchmark on the likely label: its split, the classes that would only pretrain, those
    with few test samples per split, and the command."""
    if not task:
        return ["benchmark: no label column with two or more classes (add a sample sheet)"]
    split = " / ".join(f"{k} {v:g}" for k, v in task["split"].items())
    lines = [
        f"benchmark on {task['label']} ({task['chosen']}): {task['labelled']} of {n_samples} "
        f"samples labelled; default protocol: {plural(task['splits'], 'outer split')} "
        f"({split}), {task['test_per_split']} test samples per split"
    ]
    if task["too_small"]:
        named = ", ".join(f"{c} ({plural(k, 'sample')})" for c, k in task["too_small"].items())
        lines.append(
            f"  too small for the split (fewer than {task['min_class_size']} samples), would only "
            f"pretrain: {named}"
        )
    if task["few_test"]:
        named = ", ".join(f"{c} ({k})" for c, k in task["few_test"].items())
        moves = 1 / (max(1, min(task["few_test"].values())) * task["classes"])
        lines.append(
            f"  fewer than {task['min_test_per_class']:g} test samples per split, each moving "
            f"balanced accuracy by up to {moves:.2f}: {named}"
        )
    if task["classes"] < 2:
        lines.append(f"  fewer than 2 classes left: {task['label']} cannot be benchmarked")
        return lines
    return [*lines, f"run: {task['command']}"]
