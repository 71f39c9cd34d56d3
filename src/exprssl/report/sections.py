"""The report's sections: each one function of (summary, manifest, metric, out, figures)
returning blocks; ``SECTIONS`` is the order. Adding a section is one function and one entry.
Each plot sits beside the table it illustrates (``Beside``); the table of contents follows the
first screen."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.schema import (
    AttributionInfo,
    Layout,
)
from ..evaluation.stats import COLLAPSE_SCORE
from ..utils import plural
from .answer import answer_blocks, class_counts, data_source
from .blocks import (
    Beside,
    Bold,
    BoldUser,
    Bullets,
    Code,
    Contents,
    Heading,
    Image,
    Para,
    Table,
    User,
    listing,
)
from .tables import comparisons, fmt_fraction, matrix_cells


def _figure(figures: dict, key: str, caption: str = "") -> list:
    """The plot ``key`` as a block, if it was drawn."""
    return [Image(key, figures[key], caption=caption)] if key in figures else []


def _beside(table, figures: dict, key: str, caption: str = ""):
    """A table with the plot that illustrates it beside it (the table alone if not drawn)."""
    image = _figure(figures, key, caption)
    return Beside([table, *image]) if image else table


def _contents_section(summary, manifest, metric, out, figures) -> list:
    return [Contents()]


def _answer_section(summary, manifest, metric, out, figures) -> list:
    if summary.empty:
        return []
    lines, notes = answer_blocks(summary, manifest, metric)
    return [Para(x) for x in lines] + ([Bullets(notes)] if notes else [])


def _data_section(summary, manifest, metric, out, figures) -> list:
    ds = manifest.dataset
    if ds.n_samples is None:
        return []
    classes = class_counts(ds.classes)
    return [
        Para(
            [
                Bold("Data"),
                ": ",
                User(ds.description or ds.source),
                f" — {ds.n_samples} profiles x {ds.n_genes} features; label ",
                Code(ds.label),
                ": ",
                *classes,
                ".",
            ]
        )
    ]


def _protocol_section(summary, manifest, metric, out, figures) -> list:
    if not manifest.found:
        return []
    protocol, group = manifest.setting("protocol"), manifest.setting("group")
    sizes = manifest.split_sizes
    if protocol == "default":
        parts = f"a training part of {sizes.get('finetune')} and a test part of {sizes.get('test')}"
    else:
        parts = (
            f"a pretraining part of {sizes.get('pretrain')}, a fine-tuning part of "
            f"{sizes.get('finetune')} and a test part of {sizes.get('test')}"
        )
    return [
        Para(
            [
                Bold("Protocol"),
                f" ({protocol}): {plural(manifest.splits, 'outer stratified split')}",
                *([", grouped by ", Code(group)] if group else []),
                f", each {parts} labelled profiles (means over splits; the pretraining pool is "
                f"described above); {plural(len(manifest.seeds), 'label subset')} per split and "
                "fraction; "
                + (
                    "preprocessing fit on each split's pretraining pool: "
                    f"{' → '.join(manifest.preprocessing)}; "
                    if manifest.preprocessing
                    else ""
                )
                + "the test set is never used for pretraining, fitting, tuning or early stopping.",
            ]
        )
    ]


def _scores_section(summary, manifest, metric, out, figures) -> list:
    if summary.empty:
        return []
    header, rows = matrix_cells(summary, ci=True, bold_best=True)
    title = (
        f"{metric.replace('_', ' ').capitalize()} on the test set (mean [95% CI]; best per "
        "column in bold)"
    )
    return [
        Heading(2, [title]),
        _beside(
            Table(header, rows),
            figures,
            "label_efficiency",
            "Label efficiency: the table's means against the number of labelled samples.",
        ),
        *_figure(
            figures,
            "confusion_matrix",
            "Test predictions of the best approach at the largest fraction, pooled over splits and "
            "label subsets.",
        ),
    ]


def _comparison_section(summary, manifest, metric, out, figures) -> list:
    comp = comparisons(summary)
    if comp.empty:
        return []
    rows = [
        [
            [fmt_fraction(r.fraction, r.n_labelled)],
            [User(r.approach)],
            [User(r.vs)],
            [f"{r.diff:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}]"],
            [r.verdict],
        ]
        for r in comp.itertuples()
    ]
    return [
        Heading(2, ["Paired comparison: best SSL approach minus best baseline"]),
        _beside(
            Table(["fraction", "SSL approach", "baseline", "difference [95% CI]", "verdict"], rows),
            figures,
            "paired_differences",
            "The table's differences with their intervals; zero: no difference.",
        ),
    ]


def _pretraining_section(summary, manifest, metric, out, figures) -> list:
    """What pretraining did: its losses per epoch, and the test embeddings it produced."""
    shown = [*_figure(figures, "pretraining_loss"), *_figure(figures, "embeddings")]
    return [Heading(2, ["Pretraining: losses and embeddings"]), *shown] if shown else []


def _tuning_section(summary, manifest, metric, out, figures) -> list:
    """Grids, then per approach the hyperparameters its cells chose, and why defaults were kept."""
    from ..evaluation.baselines import BASELINES, all_grids
    from ..evaluation.screening import SCREEN_CELLS, SCREEN_GENES
    from ..evaluation.tuning import MAX_FOLDS, describe_grids

    folds = max([*MAX_FOLDS.values(), *(b.max_folds for b in BASELINES.values())])
    blocks = [
        Heading(2, ["Tuning"]),
        Para(
            [
                "Every baseline and every SSL head picks its hyperparameters by inner "
                "cross-validation on "
                f"the labelled subset only (stratified, up to {folds} folds), from the same grids "
                "on "
                "both sides:"
            ]
        ),
        Bullets([[f"{name}: ", User(grid)] for name, grid in describe_grids(all_grids()).items()]),
        Para(
            [
                "An XGBoost or elastic-net fit on many rows reads the genes of largest ANOVA F "
                f"on its own training rows, as many as keep rows x genes within {SCREEN_CELLS:,} "
                f"and at least {SCREEN_GENES:,} (an inner fold's training part, or the labelled "
                "subset for the final model), so no held-out or test row chooses genes; smaller "
                "fits read every gene."
            ]
        ),
    ]
    path = Layout(out).tuning
    t = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if t.empty:
        return blocks
    rows = []
    for approach, g in t.groupby("approach"):
        shares = g["params"].value_counts(normalize=True).head(3).items()
        chosen = listing(([User(params), f" ({v:.0%})"] for params, v in shares), "; ")
        rows.append([[User(approach)], chosen])
    blocks.append(Table(["approach", "chosen (share of cells)"], rows))
    notes = t["note"].dropna()
    notes = notes[notes != ""]
    if len(notes):
        blocks.append(
            Bullets(
                [
                    [f"{n} of {len(t)} cells: ", User(note), "."]
                    for note, n in notes.value_counts().head(4).items()
                ]
            )
        )
    return blocks


def _attributions_section(
    summary, manifest, metric, out, figures, k: int = 20, shown: int = 8
) -> list:
    """Which genes carry the prediction: per class, the best approaches' top genes at the largest
    fraction (best mean rank over splits), their stability across splits and their overlap with
    the linear baseline's top genes (``attributions.csv``); and whether the best SSL approach
    leans on the same genes with the fewest labels."""
    path = Layout(out).attributions
    info = manifest.attributions or AttributionInfo()
    why_not = _not_attributable(info)
    if not path.exists():
        return [Heading(2, ["Genes carrying the prediction"]), *why_not] if why_not else []
    every = pd.read_csv(path, dtype={"gene": str, "class": str})
    if every.empty:
        return []
    k = min(k, every["gene"].nunique())
    table = every
    if "fraction" in every:  # the per-class table: the largest fraction
        table = every[np.isclose(every["fraction"], every["fraction"].max())]
    ref = info.reference
    frac = info.fraction
    where = f" at the largest fraction ({frac:.0%} of the labels)" if frac is not None else ""
    return [
        Heading(2, ["Genes carrying the prediction"]),
        Para(
            [
                "Per-class gene attributions of the best SSL approach and the best "
                f"baselines{where}, re-fitted on each split's seed-0 labelled subset with the "
                "hyperparameters its cell chose, on the standardised genes: networks by "
                "integrated gradients (mean |attribution| over the split's test samples of the "
                "class), linear models by their coefficients. Genes by mean rank over splits; "
                "stability: Spearman ρ of the attributions and Jaccard overlap of the top "
                f"{k} genes between splits; overlap: share of the top {k} that are also the "
                "linear baseline's (same split). All rows (every fraction): attributions.csv."
            ]
        ),
        _beside(
            attribution_table(table, ref, k, shown),
            figures,
            "attribution_genes",
        ),
        *_figure(figures, "attribution_stability"),
        *_across_fractions(every, summary, k),
        *why_not,
    ]


def _not_attributable(info: AttributionInfo) -> list:
    """One line per approach whose learner cannot be attributed: why it has no gene table."""
    reasons = info.not_attributable or {}
    lines = [[User(a), f" has no gene table: {why}."] for a, why in reasons.items()]
    return [Bullets(lines)] if lines else []


def attribution_table(table: pd.DataFrame, ref: str | None, k: int, shown: int) -> Table:
    """The top genes per class and approach, their stability and overlap with ``ref``: the
    report's attributions table and the explain page's."""
    return Table(
        [
            "class",
            "approach",
            f"top {shown} genes",
            "stability across splits",
            f"top-{k} overlap with {ref or 'a linear baseline'}",
        ],
        _attribution_rows(table, ref, k, shown),
    )


def _attribution_rows(table: pd.DataFrame, ref: str | None, k: int, shown: int) -> list:
    """One row per class and approach: its top genes, their stability across splits and their
    overlap with the reference (linear) approach's top ``k``."""
    from ..attributions import overlap, stability

    stable = stability(table, k).set_index(["approach", "class"])
    shared = (
        overlap(table, ref, k).set_index(["approach", "class"]).iloc[:, 0]
        if ref in set(table["approach"])
        else pd.Series(dtype=float)
    )
    mean_rank = table.groupby(["approach", "class", "gene"])["rank"].mean().reset_index()
    rows = []
    for (cls, approach), g in mean_rank.groupby(["class", "approach"], sort=True):
        top = g.nsmallest(shown, "rank")["gene"]
        st = stable.loc[(approach, cls)]
        stab = (
            "one split"
            if st["n_splits"] < 2
            else f"ρ {st['spearman']:.2f}, top-{k} Jaccard {st[f'jaccard_top{k}']:.2f}"
        )
        ov = shared.get((approach, cls))
        rows.append(
            [
                [User(cls)],
                [User(approach)],
                [User(", ".join(top))],
                [stab],
                ["reference" if approach == ref else "" if ov is None else f"{ov:.0%}"],
            ]
        )
    return rows


def _across_fractions(every: pd.DataFrame, summary, k: int) -> list:
    """One line: the share of the best SSL approach's top-k genes (largest fraction) that it
    also ranks top-k at the smallest fraction it was explained at (same split and class)."""
    if "fraction" not in every or summary is None or "best_ssl" not in summary:
        return []
    last = summary[np.isclose(summary["fraction"], summary["fraction"].max())]
    best = last.loc[last["best_ssl"], "approach"]
    own = every[(every["approach"].isin(best)) & (every["rank"] <= k)]
    if own["fraction"].nunique() < 2:
        return []
    lo, hi = own["fraction"].min(), own["fraction"].max()
    keys = ["split", "class", "gene"]
    small = own[np.isclose(own["fraction"], lo)][keys].assign(shared=True)
    large = own[np.isclose(own["fraction"], hi)].merge(small, on=keys, how="left")
    share = large["shared"].astype("boolean").fillna(False).astype(bool).mean()
    return [
        Para(
            [
                f"Across fractions: {share:.0%} of ",
                User(best.iloc[0]),
                f"'s top {k} genes at {hi:.0%} of the labels are also its top {k} at {lo:.0%} "
                "(same split and class, averaged).",
            ]
        )
    ]


def _run_section(summary, manifest, metric, out, figures) -> list:
    if not manifest.found:
        return []
    return [
        Heading(2, ["Run"]),
        Bullets(
            [
                [f"versions: {manifest.versions}"],
                [f"git revision: {manifest.git_revision}"],
                [f"data fingerprint: {manifest.fingerprint}"],
                [f"worker processes: {manifest.jobs}; wall time (s): {manifest.timings_s}"],
            ]
        ),
    ]


def _models_section(summary, manifest, metric, out, figures) -> list:
    """Where each given pretrained encoder was pretrained (from its model card), and how well its
    genes cover the cohort: what a reader needs to judge a transfer result."""
    if not manifest.models:
        return []
    items = []
    for name, m in manifest.models.items():
        sources = listing(map(data_source, m.data_sources), "; ")
        genes = m.genes
        options = ", ".join(f"{k}={v}" for k, v in m.method_options.items())
        items.append(
            [
                BoldUser(name),
                " (",
                User(m.given),
                "): pretrained with ",
                User(m.method),
                " (",
                User(options),
                f") for {m.epochs_trained} epochs (at most {m.max_epochs}), exprssl ",
                User(m.exprssl_version),
                ", on ",
                *(sources or ["data its card does not record"]),
                f"; {genes.get('count')} genes (",
                User(genes.get("id_system")),
                f"), {100 * m.gene_coverage:.1f}% of them found in this cohort (",
                User(m.alignment),
                "); cohort scaled by ",
                User(m.input_scaling or "?"),
                "; weights sha256 ",
                Code(str(m.weights_sha256)[:16]),
                ".",
            ]
        )
    return [
        Heading(2, ["Pretrained models"]),
        Para(
            [
                "Each given model is evaluated as two approaches (its name with +linear_probe and "
                "+finetune) on the same splits, label subsets and tuning as the SSL methods "
                "pretrained here, with its own preprocessing and gene list (its genes matched to "
                "the "
                "cohort's by name or through the identifier table; missing ones imputed with its "
                "training "
                "mean); fine-tuning starts from its weights."
            ]
        ),
        Bullets(items),
    ]


def _pooling_section(summary, manifest, metric, out, figures) -> list:
    """How pretraining sources of other platforms were put on the cohort's scale."""
    scaling = manifest.pool.scaling
    if not scaling:
        return []
    return [Para([Bold("Pooling"), ": ", scaling])]


def _degenerate_section(summary, manifest, metric, out, figures) -> list:
    """Every approach with collapsed cells (predictions collapsed to one class) or at chance: the
    share of its cells affected, whether that flags it, and whether the flag left it out of "the
    best"."""
    if summary.empty or "degenerate" not in summary:
        return []
    collapsed = summary.get("collapsed", pd.Series(0.0, index=summary.index)).fillna(0)
    flagged = summary["degenerate"].fillna("").astype(str) != ""
    shown = summary[flagged | (collapsed > 0)]
    if shown.empty:
        return []
    excluded = shown.get("excluded", pd.Series(True, index=shown.index)).astype(bool)
    rows = [
        [
            [fmt_fraction(r.fraction, r.n_labelled)],
            [User(r.approach)],
            [f"{r.mean:.3f}"],
            [f"{collapsed[i]:.0%}"],
            [r.degenerate or "not flagged: a third of its cells or fewer"],
            ["yes" if flagged[i] and excluded[i] else "no"],
        ]
        for i, r in zip(shown.index, shown.itertuples(), strict=True)
    ]
    return [
        Heading(2, ["Degenerate approaches"]),
        Para(
            [
                "A cell's predictions collapsed when one class took at least "
                f"{COLLAPSE_SCORE:.0%} of the way from its share of the test labels to every "
                f"prediction (a single class, or 23 of 24 where 58% are that class). An approach "
                "is flagged when more than a third of its cells collapsed, or when it "
                "scores at chance where a baseline does not. A flagged approach is left out of "
                "the best of its kind only where that changes the comparison: its collapsed cells "
                "scored no lower than its others (a majority-class guess props up accuracy), all "
                "of them collapsed, or it is at chance; when every approach of a kind is left "
                "out, the best of them is still compared."
            ]
        ),
        Table(
            ["fraction", "approach", "mean", "cells collapsed", "flag", "left out of the best"],
            rows,
        ),
    ]


def _transfer_section(summary, manifest, metric, out, figures) -> list:
    """Each given model's approaches against the same method pretrained on this cohort's own pool
    and against no pretraining, paired, per fraction: did the compendium encoder help?"""
    if summary.empty or "vs_in_cohort" not in summary:
        return []
    rows = summary[summary["vs_in_cohort"].notna() | summary["vs_no_pretraining"].notna()]
    if rows.empty:
        return []

    def cell(r, suffix):
        vs = getattr(r, f"vs{suffix}")
        if not isinstance(vs, str):
            return [[""], [""]]
        d, lo, hi = (getattr(r, f"diff{suffix}{x}") for x in ("", "_lo", "_hi"))
        return [[User(vs)], [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] ", getattr(r, f"verdict{suffix}")]]

    table = [
        [
            [fmt_fraction(r.fraction, r.n_labelled)],
            [User(r.approach)],
            *cell(r, "_in_cohort"),
            *cell(r, "_no_pretraining"),
        ]
        for r in rows.itertuples()
    ]
    return [
        Heading(2, ["Transfer: given models against in-cohort pretraining and none"]),
        Para(
            [
                "Each given model's approach minus the same SSL method pretrained on this "
                "cohort's own pool (when the run pretrained it), and minus no pretraining (the "
                "random-init encoder's probe for the probe; the same network trained from "
                "scratch, the MLP baseline, for fine-tuning; both with this run's architecture), "
                "paired over splits, label subsets and test samples (95% CI)."
            ]
        ),
        Table(
            [
                "fraction",
                "given model",
                "in-cohort",
                "difference [95% CI]",
                "no pretraining",
                "difference [95% CI]",
            ],
            table,
        ),
    ]


SECTIONS = (
    _answer_section,
    _data_section,
    _protocol_section,
    _pooling_section,
    _models_section,
    _contents_section,
    _scores_section,
    _comparison_section,
    _transfer_section,
    _degenerate_section,
    _pretraining_section,
    _attributions_section,
    _tuning_section,
    _run_section,
)
