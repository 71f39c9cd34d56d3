"""The report as a document: inline content (our words, ``User`` text from the data,
``Bold``, ``Code``) in blocks (``Heading``, ``Para``, ``Bullets``, ``Table``, ``Image``),
rendered to Markdown, plain text and one self-contained HTML file from the same blocks: nothing
is parsed back, and user text is escaped in every format."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from ..text import literal


def listing(items, sep: str = ", ") -> list:
    """Inline content: each item (a list of inline pieces) in turn, ``sep`` between them."""
    out: list = []
    for item in items:
        out += [sep, *item] if out else list(item)
    return out


def md_escape(text) -> str:
    """User-derived text (class names, column names, paths) as literal Markdown: ``<script>``
    and ``![x](http://...)`` must render as text, never as HTML or a remote image."""
    return literal(text, "markdown")


# A report is a list of blocks whose text is inline content: a list of plain strings (our own
# words), ``User`` (text from the data: escaped in both formats), ``Bold`` and ``Code``. The
# Markdown and HTML renderers below read the same blocks: nothing is parsed back.
class User(str):
    """Text from the data or the user (class names, paths, columns): always escaped."""


class Bold(str):
    """Emphasised text of our own."""


class BoldUser(User, Bold):
    """A name from the user shown in bold (a given model's): escaped like ``User``."""


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
            out.append(f"**{md_escape(p) if isinstance(p, User) else p}**")
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
        text = literal(p, "html")
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
