"""The one table builder (approaches x label fractions) behind the CLI, report.md and
report.html, and the paired comparisons the verdicts read."""

from __future__ import annotations

import math

import pandas as pd

from .blocks import Bold, User, to_markdown, to_text


def fmt_fraction(frac: float, n: float) -> str:
    return f"{frac:.0%} (n={int(round(n))})"


def summary_matrix(
    summary: pd.DataFrame, ci: bool = True, bold_best: bool = False, plain: bool = False
) -> pd.DataFrame:
    """Approaches (SSL first, then baselines, then controls) x label fractions: the mean, and with
    ``ci`` its 95% interval, as Markdown text (``plain``: as plain text, for a terminal). The one
    table builder behind the CLI, report.md and report.html (which renders the same cells,
    ``_matrix``, as HTML)."""
    header, rows = matrix_cells(summary, ci, bold_best)
    if not header:
        return pd.DataFrame()
    render = to_text if plain else to_markdown
    return pd.DataFrame([[render(c) for c in row] for row in rows], columns=header)


def matrix_cells(summary: pd.DataFrame, ci: bool, bold_best: bool) -> tuple[list[str], list[list]]:
    """(column names, rows of inline cells) of ``summary_matrix``."""
    if summary.empty:
        return [], []
    cols = {f: fmt_fraction(f, g["n_labelled"].mean()) for f, g in summary.groupby("fraction")}
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
