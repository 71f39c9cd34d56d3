"""The benchmark report: plots, a headline table and plain verdicts, as Markdown and one HTML file.

Reads what the protocol wrote into an output directory (results.csv, histories/, embeddings/,
predictions/best.npz, manifest.json); any missing piece is noted, never fatal. Every file is
written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluation.metrics import curves, labels_to_reach
from .utils import atomic_path, atomic_write_text

SSL_METHODS = ("scarf", "byol", "vime", "barlow", "mae")
BASELINE_NAMES = ("logreg", "xgboost", "mlp", "pca_logreg", "random_encoder")
# Okabe-Ito (colour-blind safe) for SSL methods; greys/browns for baselines
_PALETTE = {"scarf": "#0072B2", "byol": "#E69F00", "vime": "#009E73", "barlow": "#CC79A7", "mae": "#D55E00",
            "logreg": "#555555", "xgboost": "#8C6D31", "mlp": "#999999", "pca_logreg": "#000000",
            "random_encoder": "#BBBBBB"}


def method_colors() -> dict[str, str]:
    return dict(_PALETTE)


def _color(method: str) -> str:
    return _PALETTE.get(method, "#56B4E9")


def _savefig(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- tables and words
def headline_table(results: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Rows: fractions (with n labelled); columns: approaches; cells: mean over seeds."""
    c = curves(results, metric)
    if c.empty:
        return pd.DataFrame()
    t = c.pivot_table(index=["fraction", "n_labelled"], columns="approach", values="mean")
    return t.sort_index()


def _best(c: pd.DataFrame, kind: str) -> pd.Series | None:
    g = c[c["kind"] == kind]
    return None if g.empty else g.loc[g["mean"].idxmax()]


def verdicts(results: pd.DataFrame, metric: str = "balanced_accuracy") -> list[str]:
    """One plain sentence per fraction: who wins, and whether SSL helped."""
    c = curves(results, metric)
    out = []
    for frac, g in c.groupby("fraction"):
        n = int(round(g["n_labelled"].mean()))
        top = g.loc[g["mean"].idxmax()]
        ssl, base = _best(g, "ssl"), _best(g, "baseline")
        head = f"At {frac:.0%} labels (n={n}) the best approach is {top['approach']} ({top['mean']:.3f})"
        if ssl is None or base is None:
            out.append(head + ".")
        elif ssl["mean"] > base["mean"]:
            gap = ssl["mean"] - base["mean"]
            overlap = ssl["lo"] <= base["hi"]
            out.append(head + f"; SSL beats the best baseline, {base['approach']} ({base['mean']:.3f}), by "
                       f"{gap:.3f}" + (" — within the seed-to-seed CI, so not a clear win." if overlap else "."))
        else:
            out.append(head + f"; the best SSL approach, {ssl['approach']}, reaches {ssl['mean']:.3f}: "
                       "SSL does not help here.")
    return out


# ----------------------------------------------------------------------------- plots
def _shown_approaches(c: pd.DataFrame) -> list[str]:
    """Baselines plus, per SSL method, its better head (mean over fractions): readable at a glance."""
    keep = list(c[c["kind"] == "baseline"]["approach"].unique())
    ssl = c[c["kind"] == "ssl"]
    for _, g in ssl.groupby("method"):
        keep.append(g.groupby("approach")["mean"].mean().idxmax())
    return keep


def plot_label_efficiency(results: pd.DataFrame, metric: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    metrics = [metric] + [m for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc")
                          if m != metric and m in set(results["metric"])]
    fig = plt.figure(figsize=(13, 6.4))
    grid = fig.add_gridspec(3, 2, width_ratios=[2.2, 1], hspace=0.6, wspace=0.18)
    axes = [fig.add_subplot(grid[:, 0])] + [fig.add_subplot(grid[i, 1]) for i in range(min(3, len(metrics) - 1))]
    shown = _shown_approaches(curves(results, metric))
    for ax, m in zip(axes, metrics, strict=False):
        c = curves(results, m)
        main = ax is axes[0]
        for approach in shown:
            g = c[c["approach"] == approach].sort_values("n_labelled")
            if g.empty:
                continue
            row = g.iloc[0]
            ssl = row["kind"] == "ssl"
            ax.plot(g["n_labelled"], g["mean"], "-" if ssl else "--", marker="o" if ssl else None, ms=4,
                    lw=2.2 if ssl else 1.5, color=_color(row["method"]), label=approach)
            if main:
                ax.fill_between(g["n_labelled"], g["lo"].clip(0, 1), g["hi"].clip(0, 1),
                                color=_color(row["method"]), alpha=0.10, lw=0)
        ax.set_xscale("log")
        ticks = sorted(c["n_labelled"].round().astype(int).unique())
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_title(m.replace("_", " "), fontsize=13 if main else 10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10 if main else 8)
    axes[0].set_xlabel("labelled training samples (log scale)")
    axes[0].set_ylabel(f"{metric.replace('_', ' ')} on the held-out test set")
    axes[0].legend(loc="upper left", bbox_to_anchor=(0, -0.1), ncol=5, fontsize=9, frameon=False)
    fig.suptitle("Label efficiency: SSL methods (solid, best head each) vs supervised baselines (dashed); "
                 "bands: 95% CI over seeds", fontsize=11)
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
    files = sorted(hist_dir.glob("*.csv"))
    if not files:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(files), figsize=(3.3 * len(files), 5.4), squeeze=False)
    for j, f in enumerate(files):
        h = pd.read_csv(f)
        ax = axes[0, j]
        ax.plot(h["epoch"], h["train_loss"], color=_color(f.stem), label="train")
        if "val_loss" in h and h["val_loss"].notna().any():
            ax.plot(h["epoch"], h["val_loss"], "--", color=_color(f.stem), label="validation")
        ax.set_title(f.stem, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if j == 0:
            ax.set_ylabel("SSL loss")
            ax.legend(fontsize=8, frameon=False)
        ax2 = axes[1, j]
        if "eff_rank" in h and h["eff_rank"].notna().any():
            ax2.plot(h["epoch"], h["eff_rank"], color="#333333")
        ax2.set_xlabel("epoch")
        ax2.grid(alpha=0.3)
        if j == 0:
            ax2.set_ylabel("effective rank of\nembeddings (collapse -> 1)")
    fig.suptitle("Pretraining: loss and embedding effective rank per epoch", fontsize=12)
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
def _fmt_table(results: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    """Rows: approaches (SSL first); columns: label fractions; best per column in bold."""
    c = curves(results, metric)
    fracs = sorted(c["fraction"].unique())
    n = c.groupby("fraction")["n_labelled"].mean().round().astype(int)
    header = ["approach"] + [f"{f:.0%} (n={n[f]})" for f in fracs]
    best = c.groupby("fraction")["mean"].max()
    rows = []
    for approach, g in sorted(c.groupby("approach"), key=lambda kv: (kv[1]["kind"].iloc[0] != "ssl", kv[0])):
        by = g.set_index("fraction")
        row = [approach]
        for f in fracs:
            if f not in by.index:
                row.append("")
                continue
            m, hi = by.loc[f, "mean"], by.loc[f, "hi"]
            cell = f"{m:.3f}" + (f" ± {hi - m:.3f}" if hi == hi and hi > m else "")
            row.append(f"**{cell}**" if math.isclose(m, best[f]) else cell)
        rows.append(row)
    return header, rows


def write_report(out_dir: str | Path, *, main_metric: str = "balanced_accuracy") -> dict[str, Path]:
    out = Path(out_dir)
    written: dict[str, Path] = {}
    notes: list[str] = []
    res_file = out / "results.csv"
    results = pd.read_csv(res_file) if res_file.exists() else pd.DataFrame()
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    if results.empty:
        notes.append("No results.csv yet: nothing to plot.")
    else:
        if main_metric not in set(results["metric"]):
            main_metric = str(results["metric"].iloc[0])
        written["label_efficiency"] = plot_label_efficiency(results, main_metric, out / "label_efficiency.png")
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
    md = [f"# {title}", ""]
    if ds:
        classes = ", ".join(f"{k} {v}" for k, v in ds.get("classes", {}).items())
        md += [f"**Data**: {ds.get('description') or ds.get('source')} — {ds.get('n_samples')} samples x "
               f"{ds.get('n_genes')} features; label `{ds.get('label')}`: {classes}."]
        if ds.get("dropped_classes"):
            md += [f"Classes dropped as too small for the split: "
                   f"{', '.join(f'{k} ({v})' for k, v in ds['dropped_classes'].items())}."]
        md += [""]
    if manifest:
        cfg = manifest.get("config", {})
        md += [f"**Protocol** ({cfg.get('protocol', 'default')}): split {manifest.get('split_sizes')} "
               "(stratified" + (f", grouped by `{cfg.get('group')}`" if cfg.get("group") else "") + "); "
               f"preprocessing fit on the pretraining pool only: {' → '.join(manifest.get('preprocessing', []))}; "
               f"{len(manifest.get('seeds', []))} seeds per label fraction "
               + (f"({cfg['pretrain_seeds']} pretrainings per method, so CIs include pretraining variance)"
                  if cfg.get("pretrain_seeds", 1) > 1 else "(one pretraining per method, shared by the seeds)")
               + "; the test set is never used for pretraining, fitting or early stopping.", ""]
    verdict_lines: list[str] = []
    if not results.empty:
        header, rows = _fmt_table(results, main_metric)
        md += [f"## Headline: {main_metric.replace('_', ' ')} on the test set (mean ± 95% CI over seeds; "
               "best per column in bold)", "",
               "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        verdict_lines = verdicts(results, main_metric)
        md += ["", "## Verdict", ""] + [f"- {v}" for v in verdict_lines]
        reach = labels_to_reach(results, main_metric)
        if reach:
            md += ["", "## Labels needed to reach the best baseline's best score (the paper's summary)", ""]
            md += [f"- {a}: " + ("never (within the fractions tried)" if v != v else f"{v:.0%} of the labels")
                   for a, v in sorted(reach.items(), key=lambda kv: (kv[1] != kv[1], kv[1]))]
    md += ["", "## Plots", ""]
    for key, p in written.items():
        md += [f"![{key}]({p.name})", ""]
    if manifest:
        md += ["## Run", "", f"- versions: {manifest.get('versions')}",
               f"- git revision: {manifest.get('git_revision')}",
               f"- gene list hash: {manifest.get('gene_list_hash')}, split hash: {manifest.get('split_hash')}",
               f"- wall time (s): {manifest.get('timings_s')}"]
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
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _html(title: str, md: list[str], images: dict[str, Path]) -> str:
    """Markdown subset -> self-contained HTML (images as data URIs, no external assets)."""
    body, in_table, in_list = [], False, False
    for line in md:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
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
