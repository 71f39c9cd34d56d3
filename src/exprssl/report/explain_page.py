"""The page ``exprssl explain --out`` writes beside its attributions.csv: the table the terminal
shows and its plots, in one self-contained HTML file (images as data URIs, nothing fetched).

Output rules as for every exprssl output: a page exprssl did not write (no ``generator`` mark)
is never replaced, one it wrote only with ``overwrite``; the file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import OutputPathError
from ..utils import atomic_write_text
from .blocks import GENERATOR, Beside, Heading, Image, Para, User, render_html
from .plots import attribution_genes_figure, attribution_stability_figure, explained_approach

_MARK = f"<meta name='generator' content='{GENERATOR}'>"


def page_path(csv_path: str | os.PathLike) -> Path:
    """Where the page goes: beside the CSV, with its name (``attributions.html``)."""
    return Path(csv_path).with_suffix(".html")


def check_page_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse, before any work, a page path that holds a file exprssl did not write, or one it
    wrote without ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path}: is a directory, not a page exprssl wrote; choose another")
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as fh:
            ours = _MARK in fh.read(2000)
        if not ours:
            raise OutputPathError(
                f"{path}: exists and is not a page exprssl wrote; exprssl never replaces what "
                "it did not write: choose a new output path"
            )
        if not overwrite:
            raise OutputPathError(
                f"{path}: exists (an exprssl page); pass --overwrite to replace it"
            )
    return path


def write_explain_page(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str,
    reference: str = "logreg",
    k: int = 20,
    shown: int = 8,
) -> Path:
    """Write the page for ``table`` (``attributions.COLUMNS``) at ``path``: per class and
    approach the top genes, their stability across splits and their overlap with
    ``reference``'s top ``k`` (the terminal's table), the top-genes plot beside it and the
    stability plot when there are several splits."""
    from ..figures import png_bytes
    from .sections import attribution_table

    path = Path(path)
    if "fraction" in table and table["fraction"].nunique() > 1:  # a benchmark's: its largest
        table = table[table["fraction"] == table["fraction"].max()]
    k = min(k, table["gene"].nunique())
    shown = min(shown, k)
    ref = reference if reference in set(table["approach"]) else None
    approach = explained_approach(table, (), ref)
    genes = Image(
        "attribution_genes", png=png_bytes(attribution_genes_figure(table, approach, ref, k, shown))
    )
    stable = attribution_stability_figure(table, k)
    n = table["split"].nunique()
    blocks = [
        Heading(1, [User(title)]),
        Para(
            [
                "Which genes carry each class's prediction: integrated gradients through the "
                "encoder and a head fit on the labels, beside logistic regression's coefficients "
                f"on the same standardised genes; {n} split{'s' * (n > 1)}. Stability: Spearman ρ "
                f"of the attributions and Jaccard overlap of the top {k} between splits. Every "
                "row: ",
                User(path.with_suffix(".csv").name),
                ".",
            ]
        ),
        Beside(
            [
                attribution_table(table, ref, k, shown),
                genes,
            ]
        ),
        *([Image("attribution_stability", png=png_bytes(stable))] if stable is not None else []),
    ]
    atomic_write_text(path, render_html(title, blocks))
    return path
