"""The report's plots, each from the files a benchmark wrote; a plot whose input is missing is
skipped with a note, never fatal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.schema import (
    Layout,
    Verdict,
)
from ..text import literal
from ..utils import atomic_path
from .tables import comparisons, fmt_fraction

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


def method_color(method: str) -> str:
    return line_style(method)["color"]


def line_style(method: str, kind: str = "ssl") -> dict:
    """Line colour, dashes and marker of an approach's method: distinct per baseline, dotted for
    a control, solid for SSL methods and given models (by their place among them)."""
    from ..evaluation.baselines import available as baselines
    from ..methods import available

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
        style = line_style(row["method"], row["kind"])
        color = style["color"]
        ax.plot(
            g["n_labelled"],
            g["mean"],
            ls=style["ls"],
            marker=style["marker"],
            ms=5 if ssl else 4,
            lw=2.2 if ssl else 1.5,
            color=color,
            label=literal(
                f"{approach} (control)" if row["kind"] == "control" else approach, "plot"
            ),
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
            literal(f"{r.approach}\nvs {r.vs}", "plot"),
            (i, r.diff_hi),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color="#333333",
        )
    ax.axhline(0, color="black", lw=1)
    ax.margins(x=0.12, y=0.25)
    ax.set_xticks(x, [fmt_fraction(r.fraction, r.n_labelled) for r in comp.itertuples()])
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
            label = literal(lab, "plot")
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=cmap(i), label=label, alpha=0.85, lw=0)
        ax.set_title(
            "raw genes (preprocessed)" if name == "raw" else literal(name, "plot"), fontsize=11
        )
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
        color = method_color(f.stem)
        ax = axes[0, j]
        ax.plot(h["epoch"], h["train_loss"], color=color, label="train")
        if "val_loss" in h and h["val_loss"].notna().any():
            ax.plot(h["epoch"], h["val_loss"], "--", color=color, label="validation")
        ax.set_title(literal(f.stem, "plot"), fontsize=11)
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
    names = [literal(c, "plot") for c in classes]
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
    ax.set_xticks(range(len(classes)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix: {literal(d['title'], 'plot')}", fontsize=10)
    fig.tight_layout()
    return _savefig(fig, path)


def draw_figures(
    out: Path, summary: pd.DataFrame, metric: str, manifest=None
) -> tuple[dict[str, Path], list[str]]:
    """Every plot the run's files allow, and a note for each one skipped."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):  # a user's TeX setting parses every name
        return _draw_figures(out, summary, metric, manifest)


def _draw_figures(out: Path, summary: pd.DataFrame, metric: str, manifest=None):
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
    figures.update(draw_attribution_figures(out, getattr(manifest, "attributions", None)))
    return figures, notes


def draw_attribution_figures(out: Path, info=None, k: int = 20) -> dict[str, Path]:
    """The attribution plots of ``attributions.csv`` at its largest fraction (the report's
    table): the best SSL approach's top genes per class, and the stability across splits."""
    from ..figures import save_png

    path = Layout(out).attributions
    if not path.exists():
        return {}
    table = pd.read_csv(path, dtype={"gene": str, "class": str})
    if table.empty:
        return {}
    if "fraction" in table:
        table = table[np.isclose(table["fraction"], table["fraction"].max())]
    reference = getattr(info, "reference", None)
    approach = explained_approach(table, getattr(info, "approaches", None) or (), reference)
    k = min(k, table["gene"].nunique())
    figures = {
        "attribution_genes": save_png(
            attribution_genes_figure(table, approach, reference, k), out / "attribution_genes.png"
        )
    }
    stable = attribution_stability_figure(table, k)
    if stable is not None:
        figures["attribution_stability"] = save_png(stable, out / "attribution_stability.png")
    return figures


def _text(s) -> str:
    """Text from the data as a matplotlib label: ``$`` would start mathtext."""
    return str(s).replace("$", r"\$")


def explained_approach(table: pd.DataFrame, approaches=(), reference: str | None = None) -> str:
    """The approach an attributions plot shows: the first of ``approaches`` (the best SSL
    approach) in the table, else the first one that is not the linear reference."""
    present = list(dict.fromkeys(table["approach"]))
    for a in [*approaches, *(a for a in present if a != reference), *present]:
        if a in present:
            return a
    raise ValueError("an empty attributions table")


def attribution_genes_figure(
    table: pd.DataFrame, approach: str, reference: str | None = None, k: int = 20, shown: int = 8
):
    """Per class, ``approach``'s top ``shown`` genes (best mean rank over splits): a bar for the
    mean |attribution| over splits (relative to the class's first gene), a dot per split (how
    stable it is) and a dark bar for a gene also in the ``reference``'s top ``k``."""
    from ..figures import new_figure

    part = table[table["approach"] == approach]
    ref = table[(table["approach"] == reference) & (table["rank"] <= k)]
    classes = sorted(part["class"].unique(), key=str)
    ncol = min(2, len(classes))  # tall rather than wide: it sits beside its table
    nrow = math.ceil(len(classes) / ncol)
    fig = new_figure(figsize=(3.6 * ncol, 0.26 * shown * nrow + 0.9 * nrow + 0.9))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, cls in zip(axes, classes, strict=False):
        rows = part[part["class"] == cls]
        mean_rank = rows.groupby("gene")["rank"].mean().nsmallest(shown)
        imp = rows.pivot_table(index="gene", columns="split", values="attribution", aggfunc="first")
        imp = imp.abs().loc[mean_rank.index]
        scale = float(imp.mean(axis=1).max()) or 1.0
        shared = set(ref.loc[ref["class"] == cls, "gene"])
        y = np.arange(len(imp))[::-1]
        colors = ["#0072B2" if g in shared else "#9ECAE1" for g in imp.index]
        ax.barh(y, imp.mean(axis=1) / scale, color=colors, height=0.7)
        for j in range(imp.shape[1]):
            ax.plot(imp.iloc[:, j] / scale, y, "o", ms=2.5, color="#222222", alpha=0.7)
        ax.set_yticks(y, [_text(g) for g in imp.index], fontsize=8)
        ax.set_title(_text(cls), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[len(classes) :]:
        ax.axis("off")
    n = part["split"].nunique()
    shared_note = (
        f"; dark: in {_text(reference)}'s top {k} too"
        if reference in set(table["approach"])
        else ""
    )
    fig.suptitle(
        f"{_text(approach)}: top {shown} genes per class\n|attribution| relative to the class's "
        f"first; bar: mean over {n} split{'s' * (n > 1)}, dots: each split{shared_note}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def attribution_stability_figure(table: pd.DataFrame, k: int = 20):
    """Per class and approach: Spearman ρ of the attributions and Jaccard overlap of the top
    ``k`` genes between splits (``attributions.stability``); None with fewer than two splits."""
    from ..attributions import stability
    from ..figures import new_figure

    st = stability(table, k)
    st = st[st["n_splits"] >= 2]
    if st.empty:
        return None
    classes = sorted(st["class"].unique(), key=str)
    fig = new_figure(figsize=(min(14, 3 + 0.45 * len(classes)) * 1.6, 3.6))
    axes = fig.subplots(1, 2)
    x = {c: i for i, c in enumerate(classes)}
    for i, (approach, g) in enumerate(st.groupby("approach", sort=True)):
        color = _SSL_COLORS[i % len(_SSL_COLORS)]
        for ax, col in zip(axes, ("spearman", f"jaccard_top{k}"), strict=True):
            ax.plot(g["class"].map(x), g[col], "o", color=color, label=_text(approach), ms=6)
    for ax, what in zip(
        axes, ("Spearman ρ of |attribution|", f"Jaccard of the top {k}"), strict=True
    ):
        ax.set_xticks(range(len(classes)), [_text(c) for c in classes], rotation=40, ha="right")
        ax.set_ylim(-0.05 if what.startswith("J") else -1.05, 1.05)
        ax.set_ylabel(what, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle("Stability of the attributions across splits (1: every split agrees)", fontsize=10)
    fig.tight_layout()
    return fig
