"""The benchmark report: the answer first, then tables, paired verdicts and plots, as Markdown
and one self-contained HTML file.

Reads what the benchmark wrote into its output directory (summary.csv, tuning.csv, histories/,
embeddings/, predictions/best.npz, manifest.json); any missing piece is noted, never fatal.
User-derived text is escaped in both documents. Every file is written atomically. The package:
``blocks`` (the document and its renderers), ``tables``, ``answer`` (the first screen),
``plots``, ``sections`` (their order), ``explain_page`` (the page ``exprssl explain`` writes)
and ``write_report`` here.
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation.schema import Layout, Manifest, read_summary
from ..utils import atomic_write_text
from .answer import answer, transfer_lines
from .blocks import (
    Bullets,
    Heading,
    User,
    md_escape,
    render_html,
    render_markdown,
    to_markdown,
    to_text,
)
from .plots import (
    draw_figures,
    plot_confusion,
    plot_embeddings,
    plot_histories,
    plot_label_efficiency,
    plot_paired_differences,
)
from .sections import SECTIONS
from .tables import comparisons, summary_matrix

__all__ = [
    "answer",
    "comparisons",
    "md_escape",
    "plot_confusion",
    "plot_embeddings",
    "plot_histories",
    "plot_label_efficiency",
    "plot_paired_differences",
    "summary_matrix",
    "to_markdown",
    "to_text",
    "transfer_lines",
    "write_report",
]


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
    figures, notes = draw_figures(out, summary, metric, manifest)
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
