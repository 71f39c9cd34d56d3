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
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation.schema import Verdict
from .utils import atomic_path, atomic_write_text

# Okabe-Ito (colour-blind safe) for SSL methods in registry order; greys and browns for baselines
_SSL_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
_BASELINE_COLORS = ("#555555", "#000000", "#8C6D31", "#999999", "#BBBBBB", "#777777")


def _color(method: str) -> str:
    from .evaluation.baselines import available as baselines
    from .methods import available

    if method in baselines():
        return _BASELINE_COLORS[baselines().index(method) % len(_BASELINE_COLORS)]
    names = available()
    return _SSL_COLORS[names.index(method) % len(_SSL_COLORS)] if method in names else "#56B4E9"


def _savefig(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- tables and words
def _fmt_fraction(frac: float, n: float) -> str:
    return f"{frac:.0%} (n={int(round(n))})"


def summary_matrix(summary: pd.DataFrame, ci: bool = True, bold_best: bool = False) -> pd.DataFrame:
    """Approaches (SSL first, then baselines, then controls) x label fractions: the mean, and with
    ``ci`` its 95% interval. The one table builder behind the CLI, report.md and report.html."""
    if summary.empty:
        return pd.DataFrame()
    cols = {f: _fmt_fraction(f, g["n_labelled"].mean()) for f, g in summary.groupby("fraction")}
    best = summary.groupby("fraction")["mean"].max()
    cells = {}
    for r in summary.itertuples():
        text = f"{r.mean:.3f}"
        if ci and r.hi == r.hi and r.hi > r.lo:
            text += f" [{r.lo:.2f}, {r.hi:.2f}]"
        if bold_best and math.isclose(r.mean, best[r.fraction]):
            text = f"**{text}**"
        cells[r.approach, cols[r.fraction]] = text
    order = list(dict.fromkeys(summary.sort_values(["kind"], key=lambda c: c.map({"ssl": 0, "baseline": 1,
                                                                                    "control": 2}),
                                                   kind="stable")["approach"]))
    table = pd.DataFrame([[cells.get((a, c), "") for c in cols.values()] for a in order],
                         columns=list(cols.values()))
    table.insert(0, "approach", [md_escape(a) for a in order])
    return table


def comparisons(summary: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: the best SSL approach against the best baseline, paired."""
    if summary.empty or "verdict" not in summary:
        return pd.DataFrame()
    rows = summary[summary["best_ssl"] & summary["vs"].notna()]
    return rows[["fraction", "n_labelled", "approach", "vs", "diff", "diff_lo", "diff_hi", "verdict"]]


def answer(summary: pd.DataFrame, manifest: dict, metric: str) -> list[str]:
    """The first screen: the answer in one sentence, the labels SSL saves (or not), the caveats."""
    from .evaluation.stats import labels_to_reach

    comp = comparisons(summary)
    if comp.empty:
        return ["No paired comparison yet: the run has no SSL approach or no baseline."]
    m = metric.replace("_", " ")
    verdicts = list(comp["verdict"])
    if all(v == Verdict.TOO_SMALL for v in verdicts):
        n_test, classes = manifest.get("split_sizes", {}).get("test"), len(manifest.get("dataset", {}).get("classes", {}))
        need = manifest.get("config", {}).get("min_test_per_class", 3)
        lines = [f"**This cohort is too small for a claim**: {n_test} test samples per split over {classes} classes "
                 f"(at least {need:g} per class are needed). The table shows the measurements; no winner is named."]
    else:
        better = comp[comp["verdict"] == Verdict.BETTER]
        worse = comp[comp["verdict"] == Verdict.WORSE]
        if len(better):
            r = better.iloc[0]
            lines = [f"**SSL pretraining helps** at {_fmt_fraction(r.fraction, r.n_labelled)} labels: "
                     f"{md_escape(r.approach)} beats {md_escape(r.vs)} by {r['diff']:+.3f} {m} "
                     f"(95% CI {r.diff_lo:+.3f} to {r.diff_hi:+.3f}); SSL is better at {len(better)} of "
                     f"{len(comp)} label fractions, worse at {len(worse)}."]
        elif len(worse):
            lines = [f"**SSL pretraining does not beat supervised learning on the raw genes here**: the best SSL "
                     f"approach is worse than the best baseline at {len(worse)} of {len(comp)} label fractions and "
                     f"not detectably different at the others."]
        else:
            lines = ["**No detectable difference** between the best SSL approach and the best baseline at any "
                     f"label fraction (paired 95% intervals all include 0; {m})."]
    reach = labels_to_reach(summary)
    if reach.get("fraction") is not None:
        saved = reach["full_n"] - reach["n_labelled"]
        lines.append(f"Labels: {md_escape(reach['approach'])} reaches the best baseline's score with all "
                     f"{int(round(reach['full_n']))} labels ({reach['target']:.3f}, {md_escape(reach['baseline'])}) "
                     f"with {int(round(reach['n_labelled']))} labels ({reach['fraction']:.0%})"
                     + (f": about {int(round(saved))} labels saved (means, not a paired claim)." if saved > 0
                        else ": no labels saved."))
    elif reach:
        lines.append(f"Labels: no SSL approach reaches the best baseline's score with all labels "
                     f"({reach['target']:.3f}, {md_escape(reach['baseline'])}) at any fraction tried: no labels saved.")
    return lines + [f"- {c}" for c in caveats(manifest)]


def caveats(manifest: dict) -> list[str]:
    ds, pool, sizes = manifest.get("dataset", {}), manifest.get("pool", {}), manifest.get("split_sizes", {})
    out = []
    if sizes:
        out.append(f"Test set: {sizes.get('test')} samples per split, {manifest.get('splits')} outer split(s); "
                   "intervals resample splits, then test samples within each split (with one split: "
                   "its seeds and test samples).")
    per_class = manifest.get("test_per_class") or {}
    if per_class:
        rare, n = min(per_class.items(), key=lambda kv: kv[1])
        if n < 3:
            out.append(f"The smallest class, {md_escape(rare)}, has {n:.1f} test sample(s) per split: each of them "
                       f"moves balanced accuracy by about {1 / (max(n, 1) * len(per_class)):.2f}; the intervals "
                       "include that.")
    if pool:
        parts = ", ".join(f"{v} {md_escape(k)}" for k, v in pool.get("parts", {}).items() if v)
        out.append(f"Pretraining pool: {pool.get('size')} profiles per split ({parts}); test profiles "
                   + ("joined it without their labels (transductive)." if manifest.get("config", {}).get("transductive")
                      else "never do."))
    if ds.get("dropped_classes"):
        out.append("Classes dropped as too small for the split (their profiles only pretrain): "
                   + ", ".join(f"{md_escape(k)} ({v})" for k, v in ds["dropped_classes"].items()) + ".")
    if ds.get("n_without_label"):
        out.append(f"{ds['n_without_label']} profiles without the label only pretrain.")
    merged = manifest.get("merged_fractions") or {}
    for keep, group in merged.items():
        out.append(f"Fractions {', '.join(f'{float(f):.0%}' for f in group)} give the same labelled subsets: "
                   f"shown once, as {float(keep):.0%}.")
    out.append("The best SSL approach and the best baseline are picked per fraction by their mean; both sides "
               "are picked the same way.")
    return out


# ----------------------------------------------------------------------------- plots
def plot_label_efficiency(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(10, 5.6))
    banded = {summary.loc[summary["kind"] == k].groupby("approach")["mean"].mean().idxmax()
              for k in ("ssl", "baseline") if (summary["kind"] == k).any()}  # a band each: still readable
    for approach, g in summary.groupby("approach", sort=False):
        g = g.sort_values("n_labelled")
        row = g.iloc[0]
        if row["kind"] == "ssl" and not _best_head(summary, approach):
            continue  # one curve per SSL method: its better head
        ssl = row["kind"] == "ssl"
        color = _color(row["method"])
        ax.plot(g["n_labelled"], g["mean"], "-" if ssl else "--", marker="o" if ssl else None, ms=4,
                lw=2.2 if ssl else 1.5, color=color, label=approach)
        if approach in banded:
            ax.fill_between(g["n_labelled"], g["lo"].clip(0, 1), g["hi"].clip(0, 1), color=color, alpha=0.15, lw=0)
    ax.set_xscale("log")
    ticks = sorted(summary["n_labelled"].round().astype(int).unique())
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("labelled training samples (log scale)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} on the test set")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    ax.set_title("Label efficiency: SSL methods (solid, better head each) vs supervised baselines (dashed);\n"
                 "bands: 95% CI over splits, seeds and test samples, for the best SSL approach and the best "
                 "baseline (the paired plot compares them)", fontsize=10)
    fig.tight_layout()
    return _savefig(fig, path)


def _best_head(summary: pd.DataFrame, approach: str) -> bool:
    method = summary.loc[summary["approach"] == approach, "method"].iloc[0]
    heads = summary[(summary["kind"] == "ssl") & (summary["method"] == method)]
    return heads.groupby("approach")["mean"].mean().idxmax() == approach


_VERDICT_COLORS = {Verdict.BETTER: "#009E73", Verdict.WORSE: "#D55E00",
                   Verdict.NO_DIFFERENCE: "#555555", Verdict.TOO_SMALL: "#BBBBBB"}


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
        ax.errorbar(i, r.diff, yerr=[[r.diff - r.diff_lo], [r.diff_hi - r.diff]], fmt="o", color=color, capsize=5,
                    ms=7, lw=2)
        ax.annotate(f"{r.approach}\nvs {r.vs}", (i, r.diff_hi), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7, color="#333333")
    ax.axhline(0, color="black", lw=1)
    ax.margins(x=0.12, y=0.25)
    ax.set_xticks(x, [_fmt_fraction(r.fraction, r.n_labelled) for r in comp.itertuples()])
    ax.set_xlabel("label fraction (labelled training samples)")
    ax.set_ylabel(f"{metric.replace('_', ' ')}: SSL minus baseline")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in _VERDICT_COLORS.items()
               if v in set(comp["verdict"])]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title("Best SSL approach minus best baseline, paired over splits, subsets and test samples (95% CI)",
                 fontsize=10)
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
    for ax in axes.ravel()[len(data):]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(6, len(names)), frameon=False, fontsize=9)
    fig.suptitle(f"Test-set embeddings ({how}), coloured by label", fontsize=12)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return _savefig(fig, path)


def plot_histories(hist_dir: Path, path: Path) -> Path | None:
    """Per method: the SSL loss (train and validation), what it is made of (the loss parts each
    method logs, e.g. VIME's mask BCE and reconstruction MSE), and the embeddings' effective rank."""
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
        parts = [c for c in h.columns if c.startswith("train_") and c != "train_loss" and h[c].notna().any()]
        for k, c in enumerate(parts):
            axes[1, j].plot(h["epoch"], h[c], color=_SSL_COLORS[k % len(_SSL_COLORS)], label=c[len("train_"):])
        if parts:
            axes[1, j].legend(fontsize=7, frameon=False)
        else:
            axes[1, j].text(0.5, 0.5, "a single term", ha="center", va="center", transform=axes[1, j].transAxes,
                            color="#777777")
        if "eff_rank" in h and h["eff_rank"].notna().any():
            axes[2, j].plot(h["epoch"], h["eff_rank"], color="#333333")
        for i in range(3):
            axes[i, j].grid(alpha=0.3)
        axes[2, j].set_xlabel("epoch")
    axes[0, 0].set_ylabel("SSL loss")
    axes[0, 0].legend(fontsize=8, frameon=False)
    axes[1, 0].set_ylabel("loss parts (train)")
    axes[2, 0].set_ylabel("effective rank of\nembeddings (collapse -> 1)")
    fig.suptitle("Pretraining: loss, its parts and the embeddings' effective rank per epoch", fontsize=12)
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
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=9,
                    color="white" if norm[i, j] > 0.6 else "black")
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


def _tuning_lines(out: Path) -> list[str]:
    """Grids, then per approach the hyperparameters its cells chose, and why defaults were kept."""
    from .evaluation.baselines import BASELINES, all_grids
    from .evaluation.tuning import MAX_FOLDS, describe_grids

    folds = max([*MAX_FOLDS.values(), *(b.max_folds for b in BASELINES.values())])
    lines = ["Every baseline and every SSL head picks its hyperparameters by inner cross-validation "
             f"on the labelled subset only (stratified, up to {folds} folds), from the same grids "
             "on both sides:", ""]
    lines += [f"- {name}: {md_escape(grid)}" for name, grid in describe_grids(all_grids()).items()]
    path = out / "tuning.csv"
    if not path.exists():
        return lines
    t = pd.read_csv(path)
    if t.empty:
        return lines
    lines += ["", "| approach | chosen (share of cells) |", "|---|---|"]
    for approach, g in t.groupby("approach"):
        share = g["params"].value_counts(normalize=True)
        chosen = "; ".join(f"{md_escape(p)} ({v:.0%})" for p, v in share.head(3).items())
        lines.append(f"| {md_escape(approach)} | {chosen} |")
    notes = t["note"].dropna()
    notes = notes[notes != ""]
    if len(notes):
        lines += ["", f"- {len(notes)} of {len(t)} cells kept the defaults: " + md_escape(notes.mode().iloc[0]) + "."]
    return lines


def _table_lines(table: pd.DataFrame) -> list[str]:
    header = list(table.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]


def _summary_lines(summary: pd.DataFrame, manifest: dict, metric: str) -> list[str]:
    """The answer, the data and protocol, the table and the paired comparisons, as Markdown."""
    ds = manifest.get("dataset", {})
    md = answer(summary, manifest, metric) + [""] if not summary.empty else []
    if ds:
        classes = ", ".join(f"{md_escape(k)} {v}" for k, v in ds.get("classes", {}).items())
        md += [f"**Data**: {md_escape(ds.get('description') or ds.get('source'))} — {ds.get('n_samples')} "
               f"profiles x {ds.get('n_genes')} features; label `{md_escape(ds.get('label'))}`: {classes}.", ""]
    if manifest:
        cfg = manifest.get("config", {})
        md += [f"**Protocol** ({cfg.get('protocol', 'default')}): {manifest.get('splits')} outer stratified split(s)"
               + (f", grouped by `{md_escape(cfg.get('group'))}`" if cfg.get("group") else "")
               + f" of sizes {manifest.get('split_sizes')}; {len(manifest.get('seeds', []))} label subsets per "
               f"split and fraction; preprocessing fit on each split's pretraining pool: "
               f"{' → '.join(manifest.get('preprocessing', []))}; the test set is never used for pretraining, "
               "fitting, tuning or early stopping.", ""]
    if summary.empty:
        return md
    md += [f"## {metric.replace('_', ' ').capitalize()} on the test set (mean [95% CI]; best per column in bold)",
           ""] + _table_lines(summary_matrix(summary, ci=True, bold_best=True))
    comp = comparisons(summary)
    if not comp.empty:
        md += ["", "## Paired comparison: best SSL approach minus best baseline", "",
               "| fraction | SSL approach | baseline | difference [95% CI] | verdict |", "|---|---|---|---|---|"]
        md += [f"| {_fmt_fraction(r.fraction, r.n_labelled)} | {md_escape(r.approach)} | {md_escape(r.vs)} | "
               f"{r.diff:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}] | {r.verdict} |" for r in comp.itertuples()]
    return md


def write_report(out_dir: str | Path, *, main_metric: str | None = None) -> dict[str, Path]:
    """report.md and a self-contained report.html (plots inline) from what a benchmark wrote."""
    out = Path(out_dir)
    written: dict[str, Path] = {}
    notes: list[str] = []
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    metric = main_metric or manifest.get("config", {}).get("main_metric", "balanced_accuracy")
    summary = pd.read_csv(out / "summary.csv") if (out / "summary.csv").exists() else pd.DataFrame()
    if summary.empty:
        notes.append("No summary.csv yet: nothing to plot.")
    else:
        for col in ("best_ssl", "best_baseline"):
            summary[col] = summary[col].astype(bool)
        written["label_efficiency"] = plot_label_efficiency(summary, metric, out / "label_efficiency.png")
        p = plot_paired_differences(summary, metric, out / "paired_differences.png")
        if p is not None:
            written["paired_differences"] = p
    for key, fn, src, name in (("embeddings", plot_embeddings, out / "embeddings", "embeddings.png"),
                               ("pretraining_loss", plot_histories, out / "histories", "pretraining_loss.png"),
                               ("confusion_matrix", plot_confusion, out / "predictions" / "best.npz",
                                "confusion_matrix.png")):
        p = fn(src, out / name) if src.exists() else None
        if p is None:
            notes.append(f"{name}: no input ({src.relative_to(out)} missing), skipped.")
        else:
            written[key] = p

    ds = manifest.get("dataset", {})
    title = f"exprssl benchmark: {ds.get('source', out.name)} — {ds.get('label', '')}"
    md = [f"# {md_escape(title)}", ""] + _summary_lines(summary, manifest, metric)
    md += ["", "## Plots", ""]
    for key, p in written.items():
        md += [f"![{key}]({p.name})", ""]
    md += ["## Tuning", ""] + _tuning_lines(out) + [""]
    if manifest:
        md += ["## Run", "", f"- versions: {manifest.get('versions')}",
               f"- git revision: {manifest.get('git_revision')}",
               f"- data fingerprint: {manifest.get('fingerprint')}",
               f"- worker processes: {manifest.get('jobs')}; wall time (s): {manifest.get('timings_s')}"]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    written["report_md"] = out / "report.md"
    atomic_write_text(out / "report.html", _html(title, md, written))
    written["report_html"] = out / "report.html"
    return written




_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em}table{border-collapse:collapse;font-size:.9em;margin:1em 0;display:block;overflow-x:auto}
td,th{border:1px solid #ddd;padding:.3em .6em;text-align:right}th{background:#f4f6f8}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}li{margin:.2em 0}"""


def _inline(text: str) -> str:
    """A Markdown line's inline subset (bold, code) as HTML; backslash-escaped characters and
    entities from ``md_escape`` come out as literal text."""
    t = re.sub(r"\\(.)", lambda m: f"\x00{ord(m.group(1))}\x00", text)
    t = html.escape(html.unescape(t))
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return re.sub("\x00(\\d+)\x00", lambda m: html.escape(chr(int(m.group(1)))), t)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _html(title: str, md: list[str], images: dict[str, Path]) -> str:
    """Markdown subset -> self-contained HTML (images as data URIs, no external assets)."""
    body, in_table, in_list = [], False, False
    for line in md:
        if line.startswith("|"):
            cells = _cells(line)
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                body.append("<table>")
                body.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells) + "</tr>")
                in_table = True
                continue
            body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if in_list:
            body.append("</ul>")
            in_list = False
        if line.startswith("![") and "](" in line:
            name = line[line.index("](") + 2:-1]
            p = next((v for v in images.values() if v.name == name), None)
            if p is not None and p.exists():
                b64 = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">')
        elif line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    if in_list:
        body.append("</ul>")
    buf = io.StringIO()
    buf.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
              f"<style>{_CSS}</style></head><body>\n")
    buf.write("\n".join(body))
    buf.write("\n</body></html>\n")
    return buf.getvalue()
