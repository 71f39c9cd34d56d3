"""Intervals and paired comparisons over repeated splits: what every claim of the report rests on.

An approach's score at a label fraction is the mean over outer splits x seeds. Its interval is a
two-stage bootstrap: splits are resampled, then test samples within each split, so the interval
reflects test-set sampling, the largest source of variance on small cohorts, and not only
seed-to-seed noise. Each split's mean over its seeds (label subsets) carries the label-subset
variance into the split resampling; with a single split (cohorts of 1,000+ profiles) nothing
else would, so there the seeds are resampled too, crossed with the test samples.

A comparison between two approaches is paired: the same resampled splits, seeds and test samples
score both, so what they share cancels and the interval of the difference is much tighter than
two overlapping bands suggest.

Scores are recomputed from predicted labels with bootstrap weights (one matrix product per
split), so a 2,000-replicate interval costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..splits import MIN_TEST_PER_CLASS
from .schema import SUMMARY_COLUMNS, TransferVerdict, Verdict, approach_name, approach_names

PAIRED_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass
class SplitPredictions:
    """One outer split at one label fraction: test labels and each approach's predictions."""

    y: np.ndarray  # (n_test,) class codes
    preds: dict[str, np.ndarray]  # approach -> (n_seeds, n_test) predicted class codes


def weighted_scores(
    W: np.ndarray, y: np.ndarray, pred: np.ndarray, n_classes: int, metric: str
) -> np.ndarray:
    """``metric`` of predictions ``pred`` (R, n) against ``y`` (n,) under sample weights ``W``
    (B, n) (bootstrap counts; a row of ones is the plain score): (B, R). Classes absent from a
    resample are left out, as scikit-learn leaves out classes absent from y_true."""
    Y = np.eye(n_classes, dtype=np.float64)[y]  # (n, C)
    correct = (pred == y[None, :]).astype(np.float64)  # (R, n)
    if metric == "accuracy":
        return (W @ correct.T) / W.sum(1, keepdims=True)
    n_k = W @ Y  # (B, C)
    tp = np.einsum("bi,ri,ic->brc", W, correct, Y, optimize=True)
    present = n_k[:, None, :] > 0
    if metric == "balanced_accuracy":
        recall = np.divide(tp, n_k[:, None, :], out=np.zeros_like(tp), where=present)
        return recall.sum(2) / present.sum(2)
    if metric == "macro_f1":
        P = np.eye(n_classes, dtype=np.float64)[pred]  # (R, n, C)
        predicted = np.einsum("bi,ric->brc", W, P, optimize=True)
        denom = n_k[:, None, :] + predicted
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return (f1 * present).sum(2) / present.sum(2)
    raise ValueError(f"no bootstrap for metric {metric!r}; use one of {', '.join(PAIRED_METRICS)}")


def bootstrap(
    splits: list[SplitPredictions],
    approaches: list[str],
    n_classes: int,
    metric: str,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point estimate (mean over splits x seeds) and ``n_boot`` two-stage bootstrap replicates of
    it, per approach (seeds resampled too when there is one split). Every approach is scored on
    the same resampled splits, seeds and test samples (a seed is the same labelled subset for
    all of them), so differences are paired."""
    rng = np.random.default_rng(seed)
    K = len(splits)
    point = {a: 0.0 for a in approaches}
    per_split = {a: np.empty((K, n_boot)) for a in approaches}
    for k, sp in enumerate(splits):
        n = len(sp.y)
        W = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
        ones = np.ones((1, n))
        if K == 1:  # (B, R): the label subsets each replicate draws
            n_seeds = len(next(iter(sp.preds.values()))) if sp.preds else 1
            seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        for a in approaches:
            point[a] += weighted_scores(ones, sp.y, sp.preds[a], n_classes, metric).mean() / K
            scores = weighted_scores(W, sp.y, sp.preds[a], n_classes, metric)  # (B, R)
            per_split[a][k] = (
                np.take_along_axis(scores, seeds, axis=1) if K == 1 else scores
            ).mean(1)
    if K > 1:  # resample splits too: their training sets differ, and that variance is real
        draws = rng.integers(0, K, size=(n_boot, K))
        reps = {a: per_split[a][draws, np.arange(n_boot)[:, None]].mean(1) for a in approaches}
    else:
        reps = {a: per_split[a][0] for a in approaches}
    return point, reps


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def verdict(lo: float, hi: float, too_small: bool, labels=Verdict) -> str:
    """The paired difference's plain reading (SSL minus baseline; ``labels``: the wording of
    another comparison, e.g. ``TransferVerdict``)."""
    if too_small:
        return labels.TOO_SMALL
    if lo > 0:
        return labels.BETTER
    if hi < 0:
        return labels.WORSE
    return labels.NO_DIFFERENCE


def too_small(n_test_per_split: float, n_classes: int, min_test_per_class: float) -> bool:
    """A claim needs, per split, at least ``min_test_per_class`` test samples per class on average:
    balanced accuracy on one or two samples of a class moves by 1/(2C) with each of them."""
    return n_test_per_split < min_test_per_class * n_classes


def split_predictions(
    preds: pd.DataFrame, fraction: float, approaches: list[str]
) -> list[SplitPredictions]:
    """The predictions table (one row per cell and test sample) at one fraction, by split; an
    approach missing a seed of a split is dropped from that fraction's comparison."""
    at = preds[np.isclose(preds["fraction"], fraction)]
    out = []
    for _, g in at.groupby("split", sort=True):
        order = np.sort(g["test_index"].unique())
        y = g.drop_duplicates("test_index").set_index("test_index").loc[order, "y_true"].to_numpy()
        seeds = np.sort(g["seed"].unique())
        sp = {}
        for a in approaches:
            ga = g[g["approach"] == a]
            if ga["seed"].nunique() != len(seeds) or len(ga) != len(seeds) * len(order):
                continue
            table = ga.pivot(index="seed", columns="test_index", values="y_pred").loc[seeds, order]
            sp[a] = table.to_numpy(dtype=np.int64)
        out.append(SplitPredictions(y=y.astype(np.int64), preds=sp))
    return out


def _approach_table(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    r = results[results["metric"] == metric].copy()
    r["approach"] = approach_names(r)
    return r


@dataclass(frozen=True)
class _Setting:
    """What every fraction of ``summarize`` shares."""

    n_classes: int
    metric: str  # the reported metric
    paired: str  # the metric the paired bootstrap computes (AUROC needs probabilities)
    small: bool  # too small for a claim
    n_test_per_split: float
    n_boot: int
    seed: int
    given: Mapping[str, str]  # a given model's approach method -> its SSL method


def summarize(
    results: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    metric: str,
    n_classes: int,
    n_test_per_split: float,
    min_test_per_class: float = MIN_TEST_PER_CLASS,
    n_boot: int = 2000,
    seed: int = 0,
    given: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Approach x fraction: mean over splits x seeds, two-stage bootstrap interval, and for each
    SSL approach the paired difference to the fraction's best baseline with its interval and
    verdict. ``best_ssl`` marks the row whose verdict answers the benchmark's question;
    ``degenerate`` says why an approach is flagged and ``excluded`` whether that left it out
    of "the best" (``degenerate_flags``). Each given model's approach (``given``: its method name
    in ``results`` -> the SSL method it was pretrained with) is also compared, paired, with the
    same method pretrained on the cohort's own pool (``*_in_cohort`` columns) and with no
    pretraining (``*_no_pretraining``: the random-init control for the probe, the MLP baseline
    for fine-tuning)."""

    r = _approach_table(results, metric)
    if r.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    setting = _Setting(
        n_classes=n_classes,
        metric=metric,
        paired=metric if metric in PAIRED_METRICS else "balanced_accuracy",
        small=too_small(n_test_per_split, n_classes, min_test_per_class),
        n_test_per_split=n_test_per_split,
        n_boot=n_boot,
        seed=seed,
        given=dict(given or {}),
    )
    rows = [
        rec
        for frac, g in r.groupby("fraction", sort=True)
        for rec in _fraction_rows(frac, g, predictions, setting)
    ]
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = {"ssl": 0, "baseline": 1, "control": 2}
    return out.sort_values(
        ["fraction", "kind", "mean"],
        key=lambda c: c.map(order) if c.name == "kind" else c,
        ascending=[True, True, False],
        kind="stable",
    ).reset_index(drop=True)


def _fraction_rows(frac, g, predictions, st: _Setting):
    """``summarize``'s rows of one label fraction: each approach's mean and interval, the best of
    each kind among those not excluded, each SSL approach's paired difference to the best
    baseline, and each given model's to its in-cohort and no-pretraining counterparts."""
    from .metrics import mean_ci

    info = g.groupby("approach").agg(
        method=("method", "first"),
        kind=("kind", "first"),
        head=("head", "first"),
        n_labelled=("n_labelled", "mean"),
        mean=("value", "mean"),
        n_splits=("split", "nunique"),
        n_cells=("value", "size"),
    )
    splits = split_predictions(predictions, frac, list(info.index))
    have = [a for a in info.index if all(a in sp.preds for sp in splits)]
    point, reps = (
        bootstrap(splits, have, st.n_classes, st.paired, st.n_boot, st.seed) if have else ({}, {})
    )
    flags = degenerate_flags(splits, have, info, point, reps, st.n_classes, st.paired)
    best_base = best_approach(
        info[(info["kind"] == "baseline") & info.index.isin(have)], flags.excluded
    )
    best_ssl = best_approach(info[info["kind"] == "ssl"], flags.excluded)
    for a, row in info.iterrows():
        if st.paired == st.metric and a in reps:
            lo, hi = interval(reps[a])
        else:  # no paired bootstrap for this metric: a t-interval over cells
            lo, hi = mean_ci(g[g["approach"] == a]["value"])[1:]
        rec = {
            **{c: np.nan if c.startswith("diff") else None for c in SUMMARY_COLUMNS},
            "fraction": frac,
            "approach": a,
            **row.to_dict(),
            "lo": lo,
            "hi": hi,
            "n_test": st.n_test_per_split,
            "best_ssl": a == best_ssl,
            "best_baseline": a == best_base,
            "degenerate": flags.reason.get(a, ""),
            "collapsed": flags.collapsed.get(a, np.nan),
            "excluded": a in flags.excluded,
        }
        if row["kind"] == "ssl" and best_base is not None and a in reps:
            rec.update(_paired(a, best_base, point, reps, st.small, "", Verdict))
        for suffix, other in transfer_counterparts(row["method"], row["head"], st.given).items():
            if a in reps and other in reps:
                rec.update(_paired(a, other, point, reps, st.small, suffix, TransferVerdict))
        yield rec


def _paired(a, b, point, reps, small, suffix: str, labels) -> dict[str, Any]:
    """The columns of a paired difference ``a - b``: ``vs``, ``diff``, its interval and verdict
    (``suffix`` names the comparison: '' for the best baseline, ``_in_cohort``, ...)."""
    lo, hi = interval(reps[a] - reps[b])
    return {
        f"vs{suffix}": b,
        f"diff{suffix}": point[a] - point[b],
        f"diff{suffix}_lo": lo,
        f"diff{suffix}_hi": hi,
        f"verdict{suffix}": verdict(lo, hi, small, labels),
    }


def transfer_counterparts(method: str, head: str, given: Mapping[str, str]) -> dict[str, str]:
    """What a given model's approach is compared with to say whether transfer helped: the same
    SSL method pretrained on the cohort's own pool (``_in_cohort``) and no pretraining
    (``_no_pretraining``: the random-init encoder's probe for a probe; the same network trained
    from scratch, the MLP baseline, for fine-tuning). Empty for any other approach."""
    if method not in given:
        return {}
    return {
        "_in_cohort": approach_name(given[method], "ssl", head),
        "_no_pretraining": "random_encoder" if head == "linear_probe" else "mlp",
    }


def best_approach(candidates: pd.DataFrame, excluded) -> str | None:
    """The candidate of highest mean among those not ``excluded`` (degenerate flags whose
    collapse would change the comparison); only when every one is excluded, the best of them (its
    flag stays in the summary, and the report says so)."""
    clean = candidates[~candidates.index.isin(list(excluded))]
    pool = clean if len(clean) else candidates
    return pool["mean"].idxmax() if len(pool) else None


CHANCE_MARGIN = 0.02  # a mean this close to the best constant prediction's score is at chance
# A cell's predictions collapsed when the class they over-predict most went at least this far of
# the way from its share of the test labels to every prediction: a single class is 1.0; 23 of 24
# predicted ER+ where 58% are ER+ is 0.90; a good classifier on a 90/10 test part predicting the
# majority for 92% of it is 0.2.
COLLAPSE_SCORE = 0.8
FLAG_SHARE = 1 / 3  # an approach is flagged when more than this share of its cells collapsed


@dataclass
class Flags:
    """One fraction's degenerate approaches: why each is flagged (``reason``), the share of
    every approach's cells whose predictions collapsed (``collapsed``), and the flagged ones left
    out of "the best" (``excluded``): only where the collapse would change the comparison."""

    reason: dict[str, str]
    collapsed: dict[str, float]
    excluded: set[str]


def collapse_scores(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per row of ``pred`` (R, n): how far the most over-predicted class went from its share of
    the test labels ``y`` towards all predictions (0: no excess, 1: a single class)."""
    truth = np.bincount(y, minlength=n_classes) / len(y)  # (C,)
    shares = np.stack([np.bincount(p, minlength=n_classes) for p in pred]) / pred.shape[1]
    room = np.where(truth < 1, 1 - truth, np.inf)
    return np.clip(((shares - truth) / room).max(1), 0, 1)


def degenerate_flags(
    splits: list[SplitPredictions],
    have: list[str],
    info: pd.DataFrame,
    point: dict[str, float],
    reps: dict[str, np.ndarray],
    n_classes: int,
    metric: str,
) -> Flags:
    """Approaches whose predictions collapsed in more than ``FLAG_SHARE`` of their cells (one
    class taking ``COLLAPSE_SCORE`` of the way to every prediction), or whose mean is at chance
    (within ``CHANCE_MARGIN`` of the best constant prediction) where a baseline is above it.

    A flagged approach stays eligible as the best of its kind when its collapsed cells scored
    below its other cells: the collapse then only lowered its mean, and picking the next one
    would lower the bar the other side is compared with. It is left out (``excluded``) when
    its collapsed cells scored at least as well as the rest (a majority-class guess props up
    accuracy on an imbalanced test part), when every cell collapsed, or at chance."""
    flags = Flags({}, {}, set())
    if not have or not splits:
        return flags
    for a in have:
        per_split = [
            (
                collapse_scores(sp.y, sp.preds[a], n_classes) >= COLLAPSE_SCORE,
                weighted_scores(np.ones((1, len(sp.y))), sp.y, sp.preds[a], n_classes, metric)[0],
            )
            for sp in splits
        ]
        collapsed = np.concatenate([c for c, _ in per_split])
        scores = np.concatenate([v for _, v in per_split])
        flags.collapsed[a] = float(collapsed.mean())
        if collapsed.mean() > FLAG_SHARE + 1e-12:  # one cell of 3 is not enough; 2 of 3, 4 of 10
            flags.reason[a] = (
                f"predictions collapsed to one class in {int(collapsed.sum())} of "
                f"{len(collapsed)} cells"
            )
            if collapsed.all() or scores[collapsed].mean() >= scores[~collapsed].mean():
                flags.excluded.add(a)
    _chance_flags(flags, splits, have, info, point, reps, n_classes, metric)
    return flags


def _chance_flags(flags: Flags, splits, have, info, point, reps, n_classes, metric) -> None:
    """Flag (and exclude) the approaches at chance where some unflagged baseline is above it."""
    chance = float(
        np.mean(
            [
                weighted_scores(
                    np.ones((1, len(sp.y))),
                    sp.y,
                    np.repeat(np.arange(n_classes)[:, None], len(sp.y), 1),
                    n_classes,
                    metric,
                ).max()
                for sp in splits
            ]
        )
    )
    above = [
        b
        for b in have
        if info.loc[b, "kind"] == "baseline"
        and b not in flags.reason
        and interval(reps[b])[0] > chance
    ]
    for a in have:
        if a not in flags.reason and point[a] <= chance + CHANCE_MARGIN and above:
            flags.reason[a] = (
                f"at chance ({point[a]:.3f}; a constant prediction scores {chance:.3f}) "
                f"where {above[0]} is above it"
            )
            flags.excluded.add(a)


def paired_difference(
    predictions: pd.DataFrame,
    fraction: float,
    a: str,
    b: str,
    n_classes: int,
    metric: str = "balanced_accuracy",
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Any two approaches of a run compared on the same test samples (the verdicts compare the
    best SSL approach with the best baseline only).

    Parameters
    ----------
    predictions
        ``predictions.parquet`` of a benchmark.
    fraction
        The label fraction to compare at.
    a, b
        Approach names (``scarf+finetune``, ``logreg``, ...).
    n_classes
        Number of classes of the task.
    metric
        A metric the paired bootstrap can compute from predicted classes.
    n_boot
        Bootstrap replicates (splits, then test samples within each split).
    seed
        Seed of the resampling.

    Returns
    -------
    tuple of float
        The mean difference ``a - b`` and its 95% interval (low, high).
    """
    splits = split_predictions(predictions, fraction, [a, b])
    point, reps = bootstrap(splits, [a, b], n_classes, metric, n_boot, seed)
    lo, hi = interval(reps[a] - reps[b])
    return point[a] - point[b], lo, hi


def labels_to_reach(summary: pd.DataFrame) -> dict[str, Any]:
    """The paper's summary, on means: the smallest fraction at which the best SSL approach reaches
    the best baseline's score with all labels (None: never within the fractions tried)."""
    if summary.empty:
        return {}
    top = summary["fraction"].max()
    base = summary[(summary["fraction"] == top) & summary["best_baseline"]]
    if base.empty:
        return {}
    target = float(base["mean"].iloc[0])
    ssl = summary[summary["best_ssl"]].sort_values("fraction")
    hit = ssl[ssl["mean"] >= target - 1e-12]
    first = hit.iloc[0] if len(hit) else None
    return {
        "baseline": base["approach"].iloc[0],
        "target": target,
        "full_n": float(base["n_labelled"].iloc[0]),
        "fraction": None if first is None else float(first["fraction"]),
        "n_labelled": None if first is None else float(first["n_labelled"]),
        "approach": None if first is None else first["approach"],
    }
