"""The benchmark report: the answer first, then tables, paired verdicts and plots, as Markdown
and one self-contained HTML file.

Reads what the benchmark wrote into its output directory (summary.csv, tuning.csv, histories/,
embeddings/, predictions/best.npz, manifest.json); any missing piece is noted, never fatal.
User-derived text is escaped in both documents. Every file is written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation.schema import (
    AttributionInfo,
    Layout,
    Manifest,
    TransferVerdict,
    Verdict,
    read_summary,
)
from .evaluation.stats import COLLAPSE_SCORE
from .utils import atomic_path, atomic_write_text, plural

# Okabe-Ito (colour-blind safe) for SSL methods in registry order, then given models; baselines
# in greys and browns, each with its own dash pattern and marker so that no two look alike (0.3
# drew the elastic net and the MLP with the same grey dashes); controls dotted, with crosses
_SSL_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
_BASELINE_STYLES = (
    ("#555555", (0, (6, 2)), "s"),
    ("#000000", (0, (6, 2, 1, 2)), "^"),
    ("#8C6D31", (0, (2, 2)), "D"),
    ("#999999", (0, (8, 2, 2, 2, 2, 2)), "v"),
    ("#6B4C2A", (0, (4, 1, 1, 1)), "P"),
    ("#333333", (0, (1, 1)), "*"),
)
_CONTROL_STYLE = ("#777777", ":", "x")


def _color(method: str) -> str:
    return _style(method)["color"]


def _style(method: str, kind: str = "ssl") -> dict:
    """Line colour, dashes and marker of an approach's method: distinct per baseline, dotted for
    a control, solid for SSL methods and given models (by their place among them)."""
    from .evaluation.baselines import available as baselines
    from .methods import available

    names = baselines()
    if kind == "control":
        color, ls, marker = _CONTROL_STYLE
    elif method in names:
        color, ls, marker = _BASELINE_STYLES[names.index(method) % len(_BASELINE_STYLES)]
    else:
        methods = available()
        i = methods.index(method) if method in methods else len(methods) + sum(map(ord, method))
        return {"color": _SSL_COLORS[i % len(_SSL_COLORS)], "ls": "-", "marker": "o"}
    return {"color": color, "ls": ls, "marker": marker}


def _savefig(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- tables and words
def _fmt_fraction(frac: float, n: float) -> str:
    return f"{frac:.0%} (n={int(round(n))})"


def _listing(items, sep: str = ", ") -> list:
    """Inline content: each item (a list of inline pieces) in turn, ``sep`` between them."""
    out: list = []
    for item in items:
        out += [sep, *item] if out else list(item)
    return out


def summary_matrix(
    summary: pd.DataFrame, ci: bool = True, bold_best: bool = False, plain: bool = False
) -> pd.DataFrame:
    """Approaches (SSL first, then baselines, then controls) x label fractions: the mean, and with
    ``ci`` its 95% interval, as Markdown text (``plain``: as plain text, for a terminal). The one
    table builder behind the CLI, report.md and report.html (which renders the same cells,
    ``_matrix``, as HTML)."""
    header, rows = _matrix(summary, ci, bold_best)
    if not header:
        return pd.DataFrame()
    render = to_text if plain else to_markdown
    return pd.DataFrame([[render(c) for c in row] for row in rows], columns=header)


def _matrix(summary: pd.DataFrame, ci: bool, bold_best: bool) -> tuple[list[str], list[list]]:
    """(column names, rows of inline cells) of ``summary_matrix``."""
    if summary.empty:
        return [], []
    cols = {f: _fmt_fraction(f, g["n_labelled"].mean()) for f, g in summary.groupby("fraction")}
    best = summary.groupby("fraction")["mean"].max()
    cells = {}
    for r in summary.itertuples():
        text = f"{r.mean:.3f}"
        if ci and r.hi == r.hi and r.hi > r.lo:
            text += f" [{r.lo:.2f}, {r.hi:.2f}]"
        bold = bold_best and math.isclose(r.mean, best[r.fraction])
        cells[r.approach, cols[r.fraction]] = [Bold(text) if bold else text]
    rank = {"ssl": 0, "baseline": 1, "control": 2}
    ordered = summary.sort_values(["kind"], key=lambda c: c.map(rank), kind="stable")
    order = list(dict.fromkeys(ordered["approach"]))
    rows = [[[User(a)], *[cells.get((a, c), [""]) for c in cols.values()]] for a in order]
    return ["approach", *cols.values()], rows


def comparisons(summary: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: the best SSL approach against the best baseline, paired."""
    if summary.empty or "verdict" not in summary:
        return pd.DataFrame()
    rows = summary[summary["best_ssl"] & summary["vs"].notna()]
    return rows[
        ["fraction", "n_labelled", "approach", "vs", "diff", "diff_lo", "diff_hi", "verdict"]
    ]


def answer(
    summary: pd.DataFrame, manifest: Manifest, metric: str, plain: bool = False
) -> list[str]:
    """The first screen as Markdown lines (``plain``: plain text, for a terminal): the answer in
    one sentence, the labels SSL saves (or not), the caveats (``- `` items)."""
    lines, notes = _answer(summary, manifest, metric)
    render = to_text if plain else to_markdown
    return [render(x) for x in lines] + [f"- {render(c)}" for c in notes]


def _answer(
    summary: pd.DataFrame, manifest: Manifest, metric: str
) -> tuple[list[list], list[list]]:
    """(paragraphs, caveats) of the first screen, as inline content."""
    comp = comparisons(summary)
    if comp.empty:
        return [["No paired comparison yet: the run has no SSL approach or no baseline."]], []
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
            f" at {_fmt_fraction(r.fraction, r.n_labelled)} labels: ",
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
    lines += [x for x in (_full_labels(manifest), _labels_saved(summary)) if x]
    return lines, _caveats(manifest) + _flag_notes(summary)


def _approach_ref(approach: str, manifest: Manifest) -> list:
    """An approach's name, and where it was pretrained when it is a given model's."""
    model = manifest.models.get(str(approach).split("+")[0])
    if model is None:
        return [User(approach)]
    return [User(approach), " (a given model, pretrained on ", *_pretrained_on(model), ")"]


def _pretrained_on(model) -> list:
    sources = _listing(map(_data_source, model.data_sources), "; ")
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
                    *_pretrained_on(model),
                    ") ",
                    *_listing(parts, "; "),
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


def _flag_notes(summary: pd.DataFrame) -> list[list]:
    """The degenerate flags in two lines at most (details: the section after the plots): which
    approaches were flagged and at which fractions, and which of those flags left an approach
    out of "the best"."""
    if summary.empty or "degenerate" not in summary:
        return []
    bad = summary[summary["degenerate"].fillna("").astype(str) != ""]
    if bad.empty:
        return []
    excluded = bad.get("excluded", pd.Series(True, index=bad.index)).astype(bool)
    flagged = _listing(
        [User(a), f" ({', '.join(f'{f:.0%}' for f in g['fraction'])})"]
        for a, g in bad.groupby("approach", sort=False)
    )
    out = bad[excluded]
    left = _listing(
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
        "Flagged as degenerate (collapsed predictions or chance; details after the plots): ",
        *flagged,
        ".",
    ]
    return [first, second]


def _labels_saved(summary: pd.DataFrame) -> list:
    """How many labels the best SSL approach needs to reach the best baseline's full score."""
    from .evaluation.stats import labels_to_reach

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
        *_class_counts(full.per_class),
        ".",
    ]


def _caveats(manifest: Manifest) -> list[list]:
    ds, pool = manifest.dataset, manifest.pool
    sizes = manifest.split_sizes
    out: list[list] = []
    if sizes:
        out.append(
            [
                f"Test set: {plural(sizes.get('test'), 'sample')} per split, "
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
    if pool.size is not None:
        parts = _listing([f"{v} ", User(k)] for k, v in pool.parts.items() if v)
        transductive = manifest.setting("transductive")
        out.append(
            [
                f"Pretraining pool: {pool.size} profiles per split (",
                *parts,
                "); test profiles "
                + (
                    "joined it without their labels (transductive)."
                    if transductive
                    else "never do."
                ),
            ]
        )
    if ds.dropped_classes:
        dropped = _class_counts(ds.dropped_classes)
        out.append(
            [
                "Classes dropped as too small for the split (their profiles only pretrain): ",
                *dropped,
                ".",
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
    out.append(
        [
            "The best SSL approach and the best baseline are picked per fraction by their "
            "mean, both sides the same way; an approach whose predictions collapsed to one class "
            "in more than a third of its cells, or that scored at chance, is flagged, "
            "and left out only where that would change the comparison (its collapsed cells "
            "scored no lower than the others, or all of them collapsed, or at chance)."
        ]
    )
    return out


def _class_counts(counts: dict) -> list:
    """'NEG: 74, BCR/ABL: 37': class names and counts that cannot be misread when the names are
    numbers (0.3 printed classes 1 and 2 as '1 9, 2 23')."""
    return _listing([User(k), f": {v:g}"] for k, v in counts.items())


# ----------------------------------------------------------------------------- plots
def plot_label_efficiency(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(10, 5.6))
    banded = {
        summary.loc[summary["kind"] == k].groupby("approach")["mean"].mean().idxmax()
        for k in ("ssl", "baseline")
        if (summary["kind"] == k).any()
    }  # a band each: still readable
    for approach, g in summary.groupby("approach", sort=False):
        g = g.sort_values("n_labelled")
        row = g.iloc[0]
        if row["kind"] == "ssl" and not _best_head(summary, approach):
            continue  # one curve per SSL method: its better head
        ssl = row["kind"] == "ssl"
        style = _style(row["method"], row["kind"])
        color = style["color"]
        ax.plot(
            g["n_labelled"],
            g["mean"],
            ls=style["ls"],
            marker=style["marker"],
            ms=5 if ssl else 4,
            lw=2.2 if ssl else 1.5,
            color=color,
            label=f"{approach} (control)" if row["kind"] == "control" else approach,
        )
        if approach in banded:
            ax.fill_between(
                g["n_labelled"],
                g["lo"].clip(0, 1),
                g["hi"].clip(0, 1),
                color=color,
                alpha=0.15,
                lw=0,
            )
    ax.set_xscale("log")
    ticks = sorted(summary["n_labelled"].round().astype(int).unique())
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("labelled training samples (log scale)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} on the test set")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    ax.set_title(
        "Label efficiency: SSL methods (solid, better head each) vs supervised baselines "
        "(dashed) and controls (dotted);\n"
        "bands: 95% CI over splits, seeds and test samples, for the best SSL approach and the best "
        "baseline (the paired plot compares them)",
        fontsize=10,
    )
    fig.tight_layout()
    return _savefig(fig, path)


def _best_head(summary: pd.DataFrame, approach: str) -> bool:
    method = summary.loc[summary["approach"] == approach, "method"].iloc[0]
    heads = summary[(summary["kind"] == "ssl") & (summary["method"] == method)]
    return heads.groupby("approach")["mean"].mean().idxmax() == approach


_VERDICT_COLORS = {
    Verdict.BETTER: "#009E73",
    Verdict.WORSE: "#D55E00",
    Verdict.NO_DIFFERENCE: "#555555",
    Verdict.TOO_SMALL: "#BBBBBB",
}


def plot_paired_differences(summary: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """The paired difference (best SSL minus best baseline) per fraction, with its interval and
    a zero line: what overlapping bands on the label-efficiency curves cannot show."""
    comp = comparisons(summary)
    if comp.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(len(comp))
    for i, r in enumerate(comp.itertuples()):
        color = _VERDICT_COLORS.get(r.verdict, "#555555")
        ax.errorbar(
            i,
            r.diff,
            yerr=[[r.diff - r.diff_lo], [r.diff_hi - r.diff]],
            fmt="o",
            color=color,
            capsize=5,
            ms=7,
            lw=2,
        )
        ax.annotate(
            f"{r.approach}\nvs {r.vs}",
            (i, r.diff_hi),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color="#333333",
        )
    ax.axhline(0, color="black", lw=1)
    ax.margins(x=0.12, y=0.25)
    ax.set_xticks(x, [_fmt_fraction(r.fraction, r.n_labelled) for r in comp.itertuples()])
    ax.set_xlabel("label fraction (labelled training samples)")
    ax.set_ylabel(f"{metric.replace('_', ' ')}: SSL minus baseline")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=v)
        for v, c in _VERDICT_COLORS.items()
        if v in set(comp["verdict"])
    ]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(
        "Best SSL approach minus best baseline, paired over splits, subsets and test samples (95% "
        "CI)",
        fontsize=10,
    )
    fig.tight_layout()
    return _savefig(fig, path)


def _project_2d(Z: np.ndarray) -> tuple[np.ndarray, str]:
    try:
        import umap  # type: ignore

        return umap.UMAP(random_state=0).fit_transform(Z), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=0).fit_transform(Z), "PCA"


def plot_embeddings(emb_dir: Path, path: Path) -> Path | None:
    files = sorted(emb_dir.glob("*.npz"), key=lambda p: (p.stem == "raw", p.stem))
    if not files:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {f.stem: np.load(f, allow_pickle=False) for f in files}
    labels_all = np.unique(np.concatenate([d["labels"] for d in data.values()]))
    cmap = plt.get_cmap("tab10" if len(labels_all) <= 10 else "tab20")
    ncol = min(3, len(data))
    nrow = math.ceil(len(data) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.8 * nrow), squeeze=False)
    how = "PCA"
    for ax, (name, d) in zip(axes.ravel(), data.items(), strict=False):
        xy, how = _project_2d(np.asarray(d["Z"], dtype=np.float64))
        for i, lab in enumerate(labels_all):
            sel = d["labels"] == lab
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=cmap(i), label=lab, alpha=0.85, lw=0)
        ax.set_title("raw genes (preprocessed)" if name == "raw" else name, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(data) :]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(
        handles, names, loc="lower center", ncol=min(6, len(names)), frameon=False, fontsize=9
    )
    fig.suptitle(f"Test-set embeddings ({how}), coloured by label", fontsize=12)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return _savefig(fig, path)


def plot_histories(hist_dir: Path, path: Path) -> Path | None:
    """Per method: the SSL loss (train and validation), what it is made of (the loss parts each
    method logs, e.g. VIME's mask BCE and reconstruction MSE), and the embeddings' effective
    rank."""
    files = sorted(hist_dir.glob("*.csv"))
    if not files:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(files), figsize=(3.3 * len(files), 7.6), squeeze=False)
    for j, f in enumerate(files):
        h = pd.read_csv(f)
        color = _color(f.stem)
        ax = axes[0, j]
        ax.plot(h["epoch"], h["train_loss"], color=color, label="train")
        if "val_loss" in h and h["val_loss"].notna().any():
            ax.plot(h["epoch"], h["val_loss"], "--", color=color, label="validation")
        ax.set_title(f.stem, fontsize=11)
        parts = [
            c
            for c in h.columns
            if c.startswith("train_") and c != "train_loss" and h[c].notna().any()
        ]
        for k, c in enumerate(parts):
            axes[1, j].plot(
                h["epoch"], h[c], color=_SSL_COLORS[k % len(_SSL_COLORS)], label=c[len("train_") :]
            )
        if parts:
            axes[1, j].legend(fontsize=7, frameon=False)
        else:
            axes[1, j].text(
                0.5,
                0.5,
                "a single term",
                ha="center",
                va="center",
                transform=axes[1, j].transAxes,
                color="#777777",
            )
        if "eff_rank" in h and h["eff_rank"].notna().any():
            axes[2, j].plot(h["epoch"], h["eff_rank"], color="#333333")
        for i in range(3):
            axes[i, j].grid(alpha=0.3)
        axes[2, j].set_xlabel("epoch")
    axes[0, 0].set_ylabel("SSL loss")
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[1, 0].set_ylabel("loss parts (train)")
    axes[2, 0].set_ylabel("effective rank of\nembeddings (collapse -> 1)")
    fig.suptitle(
        "Pretraining: loss, its parts and the embeddings' effective rank per epoch", fontsize=12
    )
    fig.tight_layout()
    return _savefig(fig, path)


def plot_confusion(pred_file: Path, path: Path) -> Path | None:
    if not pred_file.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    d = np.load(pred_file, allow_pickle=False)
    classes = [str(c) for c in d["classes"]]
    cm = confusion_matrix(d["y_true"], d["y_pred"], labels=classes)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2.5, 1.0 * len(classes) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix: {d['title']}", fontsize=10)
    fig.tight_layout()
    return _savefig(fig, path)


# ----------------------------------------------------------------------------- documents
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()#!|>])")


def md_escape(text) -> str:
    """User-derived text (class names, column names, paths) as literal Markdown: ``<script>``
    and ``![x](http://...)`` must render as text, never as HTML or a remote image."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


# ----------------------------------------------------------------------------- the document
# A report is a list of blocks whose text is inline content: a list of plain strings (our own
# words), ``User`` (text from the data: escaped in both formats), ``Bold`` and ``Code``. The
# Markdown and HTML renderers below read the same blocks: nothing is parsed back.
class User(str):
    """Text from the data or the user (class names, paths, columns): always escaped."""


class Bold(str):
    """Emphasised text of our own."""


class Code(str):
    """A name from the data set in code style (a column name)."""


@dataclass
class Heading:
    level: int
    text: list


@dataclass
class Para:
    text: list


@dataclass
class Bullets:
    items: list[list]


@dataclass
class Table:
    header: list[str]
    rows: list[list[list]]


@dataclass
class Image:
    key: str
    path: Path


def to_text(parts: list) -> str:
    """Inline content as plain text (a terminal): no markup, nothing escaped."""
    return "".join(map(str, parts))


def to_markdown(parts: list) -> str:
    """Inline content as Markdown (user text escaped by ``md_escape``)."""
    out = []
    for p in parts:
        if isinstance(p, Bold):
            out.append(f"**{p}**")
        elif isinstance(p, Code):
            out.append(f"`{md_escape(p)}`")
        elif isinstance(p, User):
            out.append(md_escape(p))
        else:
            out.append(str(p))
    return "".join(out)


def _inline_html(parts: list) -> str:
    out = []
    for p in parts:
        text = html.escape(str(p))
        out.append(
            f"<b>{text}</b>"
            if isinstance(p, Bold)
            else f"<code>{text}</code>"
            if isinstance(p, Code)
            else text
        )
    return "".join(out)


def render_markdown(blocks: list) -> str:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + to_markdown(b.text), ""]
        elif isinstance(b, Para):
            lines += [to_markdown(b.text), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {to_markdown(item)}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines += ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(to_markdown(c) for c in row) + " |" for row in b.rows]
            lines += [""]
        elif isinstance(b, Image):
            lines += [f"![{b.key}]({b.path.name})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_html(title: str, blocks: list) -> str:
    """Self-contained HTML (images as data URIs, no external assets)."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif isinstance(b, Image) and b.path.exists():
            b64 = base64.b64encode(b.path.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(b.path.name)}" src="data:image/png;base64,{b64}">')
    buf = io.StringIO()
    buf.write(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_CSS}</style></head><body>\n"
    )
    buf.write("\n".join(body))
    buf.write("\n</body></html>\n")
    return buf.getvalue()


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{border-bottom:1px
solid #ddd;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;font-size:.9em;
margin:1em 0;display:block;overflow-x:auto}td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:right}th{background:#f4f6f8}td:first-child{text-align:left}img{max-width:100%;
border:1px solid #eee;margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}li{margin:.2em 0}"""


# ----------------------------------------------------------------------------- sections
# Each section is one function of (summary, manifest, metric, out, figures) returning blocks;
# ``SECTIONS`` is the report's order. Adding a section is one function and one entry.
def _answer_section(summary, manifest, metric, out, figures) -> list:
    if summary.empty:
        return []
    lines, notes = _answer(summary, manifest, metric)
    return [Para(x) for x in lines] + ([Bullets(notes)] if notes else [])


def _data_section(summary, manifest, metric, out, figures) -> list:
    ds = manifest.dataset
    if ds.n_samples is None:
        return []
    classes = _class_counts(ds.classes)
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
    header, rows = _matrix(summary, ci=True, bold_best=True)
    title = (
        f"{metric.replace('_', ' ').capitalize()} on the test set (mean [95% CI]; best per "
        "column in bold)"
    )
    return [Heading(2, [title]), Table(header, rows)]


def _comparison_section(summary, manifest, metric, out, figures) -> list:
    comp = comparisons(summary)
    if comp.empty:
        return []
    rows = [
        [
            [_fmt_fraction(r.fraction, r.n_labelled)],
            [User(r.approach)],
            [User(r.vs)],
            [f"{r.diff:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}]"],
            [r.verdict],
        ]
        for r in comp.itertuples()
    ]
    return [
        Heading(2, ["Paired comparison: best SSL approach minus best baseline"]),
        Table(["fraction", "SSL approach", "baseline", "difference [95% CI]", "verdict"], rows),
    ]


def _plots_section(summary, manifest, metric, out, figures) -> list:
    return [Heading(2, ["Plots"]), *[Image(k, p) for k, p in figures.items()]]


def _tuning_section(summary, manifest, metric, out, figures) -> list:
    """Grids, then per approach the hyperparameters its cells chose, and why defaults were kept."""
    from .evaluation.baselines import BASELINES, all_grids
    from .evaluation.tuning import MAX_FOLDS, describe_grids

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
    ]
    path = Layout(out).tuning
    t = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if t.empty:
        return blocks
    rows = []
    for approach, g in t.groupby("approach"):
        shares = g["params"].value_counts(normalize=True).head(3).items()
        chosen = _listing(([User(params), f" ({v:.0%})"] for params, v in shares), "; ")
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
    from .attributions import overlap, stability

    path = Layout(out).attributions
    info = manifest.attributions or AttributionInfo()
    if not path.exists():
        return []
    every = pd.read_csv(path, dtype={"gene": str, "class": str})
    if every.empty:
        return []
    k = min(k, every["gene"].nunique())
    table = every
    if "fraction" in every:  # the per-class table: the largest fraction
        table = every[np.isclose(every["fraction"], every["fraction"].max())]
    stable = stability(table, k).set_index(["approach", "class"])
    ref = info.reference
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
    frac = info.fraction
    where = f" at the largest fraction ({frac:.0%} of the labels)" if frac is not None else ""
    return [
        Heading(2, ["Genes carrying the prediction"]),
        Para(
            [
                "Per-class gene attributions of the best SSL approach and the best "
                f"baselines{where}, "
                "re-fitted on each split's seed-0 labelled subset with the hyperparameters its "
                "cell "
                "chose, on the standardised genes: networks by integrated gradients (mean "
                "|attribution| "
                "over the split's test samples of the class), linear models by their coefficients. "
                "Genes by mean rank over splits; stability: Spearman ρ of the attributions and "
                "Jaccard "
                f"overlap of the top {k} genes between splits; overlap: share of the top {k} that "
                "are "
                "also the linear baseline's (same split). All rows (every fraction): "
                "attributions.csv."
            ]
        ),
        Table(
            [
                "class",
                "approach",
                f"top {shown} genes",
                "stability across splits",
                f"top-{k} overlap with {ref or 'a linear baseline'}",
            ],
            rows,
        ),
        *_across_fractions(every, summary, k),
    ]


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
        sources = _listing(map(_data_source, m.data_sources), "; ")
        genes = m.genes
        options = ", ".join(f"{k}={v}" for k, v in m.method_options.items())
        items.append(
            [
                Bold(name),
                " (",
                User(m.given),
                "): pretrained with ",
                User(m.method),
                f" ({options}) for {m.epochs_trained} epochs (at most {m.max_epochs}), "
                f"exprssl {m.exprssl_version}, on ",
                *(sources or ["data its card does not record"]),
                f"; {genes.get('count')} genes ({genes.get('id_system')}), "
                f"{100 * m.gene_coverage:.1f}% of them found in this cohort (",
                User(m.alignment),
                "); cohort scaled by ",
                m.input_scaling or "?",
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


def _data_source(src: dict) -> list:
    """A pretraining source as its card records it: name (and profiles, when known)."""
    n = src.get("n_profiles")
    return [User(src.get("name")), f" ({n:,} profiles)" if isinstance(n, int) else ""]


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
            [_fmt_fraction(r.fraction, r.n_labelled)],
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
            [_fmt_fraction(r.fraction, r.n_labelled)],
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
    _scores_section,
    _comparison_section,
    _transfer_section,
    _plots_section,
    _degenerate_section,
    _attributions_section,
    _tuning_section,
    _run_section,
)


def write_report(out_dir: str | Path, *, main_metric: str | None = None) -> dict[str, Path]:
    """report.md and a self-contained report.html (plots inline) from what a benchmark wrote:
    both rendered from the same blocks (``SECTIONS``).

    Parameters
    ----------
    out_dir
        A benchmark's output directory.
    main_metric
        The metric to report (default: the run's ``main_metric``).

    Returns
    -------
    dict[str, Path]
        Every file written, by key (plots, ``report_md``, ``report_html``).
    """
    out = Path(out_dir)
    layout = Layout(out)
    manifest = Manifest.read(layout.manifest)
    metric = main_metric or manifest.setting("main_metric")
    summary = read_summary(layout.summary)
    figures, notes = _figures(out, summary, metric)
    ds = manifest.dataset
    title = f"exprssl benchmark: {ds.source or out.name} — {ds.label or ''}"
    blocks: list = [Heading(1, [User(title)])]
    for section in SECTIONS:
        blocks += section(summary, manifest, metric, out, figures)
    if notes:
        blocks += [Heading(2, ["Notes"]), Bullets([[n] for n in notes])]
    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "report.html", render_html(title, blocks))
    return {**figures, "report_md": out / "report.md", "report_html": out / "report.html"}


def _figures(out: Path, summary: pd.DataFrame, metric: str) -> tuple[dict[str, Path], list[str]]:
    """Every plot the run's files allow, and a note for each one skipped."""
    figures: dict[str, Path] = {}
    notes: list[str] = []
    if summary.empty:
        notes.append("No summary.csv yet: nothing to plot.")
    else:
        figures["label_efficiency"] = plot_label_efficiency(
            summary, metric, out / "label_efficiency.png"
        )
        p = plot_paired_differences(summary, metric, out / "paired_differences.png")
        if p is not None:
            figures["paired_differences"] = p
    layout = Layout(out)
    for key, fn, src, name in (
        ("embeddings", plot_embeddings, layout.embeddings, "embeddings.png"),
        ("pretraining_loss", plot_histories, layout.histories, "pretraining_loss.png"),
        ("confusion_matrix", plot_confusion, layout.best_predictions, "confusion_matrix.png"),
    ):
        p = fn(src, out / name) if src.exists() else None
        if p is None:
            notes.append(f"{name}: no input ({src.relative_to(out)} missing), skipped.")
        else:
            figures[key] = p
    return figures, notes
