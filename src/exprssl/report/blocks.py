"""The report as a document: inline content (our words, ``User`` text from the data,
``Bold``, ``Code``) in blocks (``Heading``, ``Para``, ``Bullets``, ``Table``, ``Image``,
``Beside``: a table and the plots that illustrate it, ``Contents``: the table of contents),
rendered to Markdown, plain text and one self-contained HTML file from the same blocks: nothing
is parsed back, and user text is escaped in every format. The HTML fetches nothing: images are
data URIs and its Content-Security-Policy forbids any other source."""

from __future__ import annotations

import base64
import html
import re
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
    """A PNG: a file beside the report (``path``), or bytes (``png``) for a page that has no
    files beside it; ``caption``: our words under it."""

    key: str
    path: Path | None = None
    png: bytes | None = None
    caption: str = ""

    def data(self) -> bytes | None:
        if self.png is not None:
            return self.png
        return self.path.read_bytes() if self.path is not None and self.path.exists() else None


@dataclass
class Beside:
    """Blocks shown side by side in HTML (a table and the plots that illustrate it; one under
    the other on a narrow screen), in turn in Markdown."""

    blocks: list


@dataclass
class Contents:
    """The table of contents: a link to every level-2 heading of the document."""


def anchors(blocks: list) -> dict[int, str]:
    """A unique anchor per level-2 heading (by ``id`` of the block), as GitHub makes them from
    the heading's text (lower case, punctuation dropped, spaces as hyphens), so the Markdown
    table of contents also works on a rendered report.md."""
    out: dict[int, str] = {}
    seen: dict[str, int] = {}
    for b in blocks:
        if isinstance(b, Heading) and b.level == 2:
            slug = re.sub(r"[^\w\- ]", "", to_text(b.text).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out[id(b)] = f"{slug}-{n}" if n else slug
    return out


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
    return "\n".join(_markdown_lines(blocks, blocks)).rstrip("\n") + "\n"


def _markdown_lines(blocks: list, document: list) -> list[str]:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Beside):
            lines += _markdown_lines(b.blocks, document)
        elif isinstance(b, Contents):
            ids = anchors(document)
            heads = [h for h in document if id(h) in ids]
            lines += [f"- [{to_markdown(h.text)}](#{ids[id(h)]})" for h in heads] + [""]
        elif isinstance(b, Heading):
            lines += ["#" * b.level + " " + to_markdown(b.text), ""]
        elif isinstance(b, Para):
            lines += [to_markdown(b.text), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {to_markdown(item)}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines += ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(to_markdown(c) for c in row) + " |" for row in b.rows]
            lines += [""]
        elif isinstance(b, Image) and b.path is not None:
            lines += [f"![{b.key}]({b.path.name})", ""] + ([f"*{b.caption}*", ""] * bool(b.caption))
    return lines


def render_html(title: str, blocks: list) -> str:
    """Self-contained HTML (images as data URIs, no external assets, nothing fetched)."""
    ids = anchors(blocks)
    body = "\n".join(_html_block(b, blocks, ids) for b in blocks)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='generator' content='{GENERATOR}'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


GENERATOR = "exprssl"  # the <meta name=generator> that marks a page exprssl wrote
# nothing but inline styles and data: images; no script, no request leaving the file
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"


def _html_block(b, document: list, ids: dict[int, str]) -> str:
    if isinstance(b, Heading):
        anchor = f' id="{ids[id(b)]}"' if id(b) in ids else ""
        return f"<h{b.level}{anchor}>{_inline_html(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return f"<p>{_inline_html(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in b.rows
        )
        return f"<table><tr>{head}</tr>{rows}</table>"
    if isinstance(b, Image):
        data = b.data()
        if data is None:
            return ""
        b64 = base64.b64encode(data).decode()
        caption = f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else ""
        alt = html.escape(b.caption or b.key, quote=True)
        return f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}">{caption}</figure>'
    if isinstance(b, Beside):
        inner = "".join(f"<div>{_html_block(x, document, ids)}</div>" for x in b.blocks)
        return f'<div class="beside">{inner}</div>'
    if isinstance(b, Contents):
        heads = [h for h in document if id(h) in ids]
        items = "".join(
            f'<li><a href="#{ids[id(h)]}">{_inline_html(h.text)}</a></li>' for h in heads
        )
        return f'<nav class="toc"><b>Contents</b><ol>{items}</ol></nav>'
    return ""


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1400px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{border-bottom:1px
solid #ddd;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;font-size:.9em;
margin:1em 0;display:block;overflow-x:auto}td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:right}th{background:#f4f6f8}td:first-child{text-align:left}img{max-width:100%;
border:1px solid #eee;margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}li{margin:.2em 0}
figure{margin:.5em 0}figcaption{font-size:.85em;color:#555}.beside{display:flex;
flex-wrap:wrap;gap:1.2em;align-items:flex-start}.beside>div{flex:1 1 440px;min-width:0}
.toc{background:#f8f9fa;border:1px solid #e4e6e8;padding:.4em 1em;margin:1em 0}
.toc ol{margin:.3em 0;columns:2}"""
