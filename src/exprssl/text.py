"""User text shown as itself: a path, a gene, column, class, approach or model name, a model
card's field. Each place that shows such text (rich on the terminal, matplotlib in a plot, the
report's Markdown and HTML) has its own markup, and a name like ``[bold]A``, ``weight [kg]``,
``$\\mathrm{x$`` or ``<script>`` must never be read as it: one function escapes for all four."""

from __future__ import annotations

import html
import re

MEDIA = ("terminal", "plot", "markdown", "html")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()#!|>$~])")


def _visible_controls(text: str) -> str:
    """A newline or an escape sequence in a name would break a one-line message or drive the
    terminal: shown as ``\\n``, ``\\x1b``."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def literal(value: object, medium: str = "terminal") -> str:
    """``value`` as text that ``medium`` shows literally, never as its markup.

    Parameters
    ----------
    value
        Anything (``str()`` of it is shown).
    medium
        ``"terminal"``: rich console markup (``[...]`` escaped, control characters made
        visible); ``"plot"``: matplotlib text (``$`` escaped so mathtext never parses it, and a
        leading ``_`` that a legend would drop kept); ``"markdown"``: Markdown with ``&``/``<``
        as entities and its special characters backslash-escaped; ``"html"``: HTML.

    Returns
    -------
    str
        The escaped text.
    """
    from rich.markup import escape

    text = str(value)
    if medium == "terminal":
        return escape(_visible_controls(text))
    if medium == "plot":
        text = text.replace("$", r"\$")
        return " " + text if text.startswith("_") else text  # legends skip labels starting "_"
    if medium == "markdown":
        text = text.replace("&", "&amp;").replace("<", "&lt;")
        return _MD_SPECIAL.sub(r"\\\1", text)
    if medium == "html":
        return html.escape(text, quote=True)
    raise ValueError(f"medium must be one of {', '.join(MEDIA)}, got {medium!r}")
