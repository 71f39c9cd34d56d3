"""The first screen: the answer in one sentence, transfer, what 100% of the labels is, the
labels SSL saves, and the caveats (the degenerate flags among them, in two lines)."""

from __future__ import annotations

import pandas as pd

from ..evaluation.schema import (
    Manifest,
    TransferVerdict,
    Verdict,
)
from ..utils import plural
from .blocks import Bold, User, listing, to_markdown, to_text
from .tables import comparisons, fmt_fraction


def answer(
    summary: pd.DataFrame, manifest: Manifest, metric: str, plain: bool = False
) -> list[str]:
    """The first screen as Markdown lines (``plain``: plain text, for a terminal): the answer in
    one sentence, the labels SSL saves (or not), the caveats (``- `` items)."""
    lines, notes = answer_blocks(summary, manifest, metric)
    render = to_text if plain else to_markdown
    return [render(x) for x in lines] + [f"- {render(c)}" for c in notes]


def answer_blocks(
    summary: pd.DataFrame, manifest: Manifest, metric: str
) -> tuple[list[list], list[list]]:
    """(paragraphs, caveats) of the first screen, as inline content."""
    comp = comparisons(summary)
    pool_only = [x for x in [_pool_only_classes(manifest)] if x]
    if comp.empty:
        first = ["No paired comparison yet: the run has no SSL approach or no baseline."]
        return [first, *pool_only], []
    m = metric.replace("_", " ")
    better = comp[comp["verdict"] == Verdict.BETTER]
    worse = comp[comp["verdict"] == Verdict.WORSE]
    last = comp.iloc[-1]  # the largest fraction
    if (comp["verdict"] == Verdict.TOO_SMALL).all():
        n_test = manifest.split_sizes.get("test")
        classes = len(manifest.dataset.classes)
        need = manifest.setting("min_test_per_class")
        first = [
            Bold("This cohort is too small for a claim"),
            f": {plural(n_test, 'test sample')} per split over {classes} classes (at least "
            f"{need:g} per class are needed). The table shows the measurements; no winner is "
            "named.",
        ]
    elif len(better):
        r = better.iloc[0]
        first = [
            Bold("SSL pretraining helps"),
            f" at {fmt_fraction(r.fraction, r.n_labelled)} labels: ",
            *_approach_ref(r.approach, manifest),
            " beats ",
            User(r.vs),
            f" by {r['diff']:+.3f} {m} (95% CI {r.diff_lo:+.3f} to "
            f"{r.diff_hi:+.3f}); SSL is better at {len(better)} of {len(comp)} label "
            f"fractions, worse at {len(worse)}.",
        ]
    elif len(worse):
        first = [
            Bold("SSL pretraining does not beat supervised learning on the raw genes here"),
            f": the best SSL approach is worse than the best baseline at {len(worse)} of "
            f"{len(comp)} label fractions and not detectably different at the others (with all "
            "labels: ",
            *_approach_ref(last.approach, manifest),
            f" {last['diff']:+.3f} against ",
            User(last.vs),
            ").",
        ]
    else:
        first = [
            Bold("No detectable difference"),
            " between the best SSL approach and the best "
            f"baseline at any label fraction (paired 95% intervals all include 0; {m}; with all "
            "labels: ",
            *_approach_ref(last.approach, manifest),
            " against ",
            User(last.vs),
            ").",
        ]
    lines = [first, *transfer_lines(summary, manifest)]
    lines += [x for x in (_full_labels(manifest), _labels_saved(summary)) if x] + pool_only
    return lines, _caveats(manifest) + flag_notes(summary)


def _approach_ref(approach: str, manifest: Manifest) -> list:
    """An approach's name, and where it was pretrained when it is a given model's."""
    model = manifest.models.get(str(approach).split("+")[0])
    if model is None:
        return [User(approach)]
    return [User(approach), " (a given model, pretrained on ", *pretrained_on(model), ")"]


def pretrained_on(model) -> list:
    sources = listing(map(data_source, model.data_sources), "; ")
    return sources or ["data its card does not record"]


def transfer_lines(summary: pd.DataFrame, manifest: Manifest) -> list[list]:
    """One line per given model: did it beat the same method pretrained on this cohort's own
    pool, and beat no pretraining? Counted over its (fraction, head) comparisons."""
    lines = []
    for name, model in manifest.models.items():
        rows = summary[(summary["kind"] == "ssl") & (summary["method"] == name)]
        parts = []
        for suffix, what in (
            ("_in_cohort", [User(model.method or "?"), " pretrained on this cohort"]),
            ("_no_pretraining", ["no pretraining"]),
        ):
            verdicts = rows.get(f"verdict{suffix}", pd.Series(dtype=object)).dropna()
            if len(verdicts):
                parts.append(["against ", *what, ": ", *_transfer_tally(verdicts)])
        if parts:
            lines.append(
                [
                    Bold("Transfer"),
                    ": ",
                    User(name),
                    " (pretrained on ",
                    *pretrained_on(model),
                    ") ",
                    *listing(parts, "; "),
                    ".",
                ]
            )
    return lines


def _transfer_tally(verdicts: pd.Series) -> list:
    """'helped (better at 3 of 8 comparisons, worse at none)' and the like."""
    n, up = len(verdicts), int((verdicts == TransferVerdict.BETTER).sum())
    down = int((verdicts == TransferVerdict.WORSE).sum())
    if (verdicts == TransferVerdict.TOO_SMALL).all():
        return ["too small for a claim"]
    word = (
        "helped"
        if up and not down
        else "hurt"
        if down and not up
        else "mixed"
        if up
        else "no detectable difference"
    )
    return [Bold(word), f" (better at {up}, worse at {down} of {n} fraction x head comparisons)"]


def flag_notes(summary: pd.DataFrame) -> list[list]:
    """The degenerate flags in two lines at most (details: "Degenerate approaches"): which
    approaches were flagged and at which fractions, and which of those flags left an approach
    out of "the best"."""
    if summary.empty or "degenerate" not in summary:
        return []
    bad = summary[summary["degenerate"].fillna("").astype(str) != ""]
    if bad.empty:
        return []
    excluded = bad.get("excluded", pd.Series(True, index=bad.index)).astype(bool)
    flagged = listing(
        [User(a), f" ({', '.join(f'{f:.0%}' for f in g['fraction'])})"]
        for a, g in bad.groupby("approach", sort=False)
    )
    out = bad[excluded]
    left = listing(
        [User(a), f" ({', '.join(f'{f:.0%}' for f in g['fraction'])})"]
        for a, g in out.groupby("approach", sort=False)
    )
    if out.empty:
        second = ["None was left out of the best: their collapsed cells only lowered their means."]
    elif len(out) == len(bad):
        second = ["Every flag left its approach out of the best at that fraction."]
    else:
        second = [
            "Left out of the best for it: ",
            *left,
            "; the others stay eligible (their collapsed cells only lowered their means).",
        ]
    first = [
        "Flagged as degenerate (collapsed predictions or chance; details under Degenerate "
        "approaches): ",
        *flagged,
        ".",
    ]
    return [first, second]


def _labels_saved(summary: pd.DataFrame) -> list:
    """How many labels the best SSL approach needs to reach the best baseline's full score."""
    from ..evaluation.stats import labels_to_reach

    reach = labels_to_reach(summary)
    if reach.get("fraction") is not None:
        saved = reach["full_n"] - reach["n_labelled"]
        end = (
            f": about {int(round(saved))} labels saved (means, not a paired claim)."
            if saved > 0
            else ": no labels saved."
        )
        return [
            "Labels: ",
            User(reach["approach"]),
            " reaches the best baseline's score with all "
            f"{int(round(reach['full_n']))} labels ({reach['target']:.3f}, ",
            User(reach["baseline"]),
            f") with {int(round(reach['n_labelled']))} labels ({reach['fraction']:.0%}){end}",
        ]
    if reach:
        return [
            "Labels: no SSL approach reaches the best baseline's score with all labels "
            f"({reach['target']:.3f}, ",
            User(reach["baseline"]),
            ") at any fraction tried: no labels saved.",
        ]
    return []


def _full_labels(manifest: Manifest) -> list:
    """What "100%" of the labels is, per split: how many labelled profiles, from which part of
    the cohort, and per class."""
    full = manifest.full_labels
    if full.mean is None:
        return []
    return [
        f"100% of the labels = {full.mean:g} labelled profiles per split (mean over "
        f"splits; {full.of}): ",
        *class_counts(full.per_class),
        ".",
    ]


def _caveats(manifest: Manifest) -> list[list]:
    """What the reader must know to weigh the numbers: the test set, the pool, what left the
    task, merged fractions and how the best of each side is picked."""
    return [
        *_test_caveats(manifest),
        *_pool_caveats(manifest),
        [
            "The best SSL approach and the best baseline are picked per fraction by their "
            "mean, both sides the same way; an approach whose predictions collapsed to one class "
            "in more than a third of its cells, or that scored at chance, is flagged, "
            "and left out only where that would change the comparison (its collapsed cells "
            "scored no lower than the others, or all of them collapsed, or at chance)."
        ],
    ]


def _test_caveats(manifest: Manifest) -> list[list]:
    """The test set's size, and how much one sample of its smallest class moves the score."""
    out: list[list] = []
    if manifest.split_sizes:
        out.append(
            [
                f"Test set: {plural(manifest.split_sizes.get('test'), 'sample')} per split, "
                f"{plural(manifest.splits, 'outer split')}; intervals resample splits, then test "
                "samples within each split (with one split: its seeds and test samples)."
            ]
        )
    per_class = manifest.test_per_class
    if per_class:
        rare, n = min(per_class.items(), key=lambda kv: kv[1])
        if n < manifest.setting("min_test_per_class"):
            out.append(
                [
                    "The smallest class, ",
                    User(rare),
                    f", has {plural(n, 'test sample')} per "
                    f"split: each of them moves balanced accuracy by about "
                    f"{1 / (max(n, 1) * len(per_class)):.2f}; the intervals include that.",
                ]
            )
    return out


def _pool_caveats(manifest: Manifest) -> list[list]:
    """The pretraining pool, the classes and profiles that only pretrain, merged fractions."""
    ds, pool = manifest.dataset, manifest.pool
    out: list[list] = []
    if pool.size is not None:
        parts = listing([f"{v} ", User(k)] for k, v in pool.parts.items() if v)
        joined = (
            "joined it without their labels (transductive)."
            if manifest.setting("transductive")
            else "never do."
        )
        out.append(
            [
                f"Pretraining pool: {pool.size} profiles per split (",
                *parts,
                "); test profiles " + joined,
            ]
        )
    if ds.n_without_label:
        out.append([f"{ds.n_without_label} profiles without the label only pretrain."])
    for keep, group in manifest.merged_fractions.items():
        out.append(
            [
                f"Fractions {', '.join(f'{float(f):.0%}' for f in group)} give the same "
                f"labelled subsets: shown once, as {float(keep):.0%}."
            ]
        )
    return out


def _pool_only_classes(manifest: Manifest) -> list:
    """The classes too small for the task (they only pretrain): on the first screen and in the
    console, since the run went on without them."""
    ds = manifest.dataset
    if not ds.dropped_classes:
        return []
    why = f" ({ds.dropped_rule})" if ds.dropped_rule else ""
    return [
        f"Classes too small for the task only pretrain, without their labels{why}: ",
        *class_counts(ds.dropped_classes),
        ".",
    ]


def class_counts(counts: dict) -> list:
    """'NEG: 74, BCR/ABL: 37': class names and counts that cannot be misread when the names are
    numbers (0.3 printed classes 1 and 2 as '1 9, 2 23')."""
    return listing([User(k), f": {v:g}"] for k, v in counts.items())


def data_source(src: dict) -> list:
    """A pretraining source as its card records it: name (and profiles, when known)."""
    n = src.get("n_profiles")
    return [User(src.get("name")), f" ({n:,} profiles)" if isinstance(n, int) else ""]
