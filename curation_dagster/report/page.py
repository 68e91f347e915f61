"""The data card's HTML: the page around the sections, tables, inline images and clipped text."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from curation_dagster.spec import VersionSpec
from curation_dagster.stages import STAGES


def render_page(spec: VersionSpec, shards: int, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: a header with the version's code versions, a navigation bar and one `<section>`
    per (id, heading, content)."""
    body = "\n".join(
        f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n{content}\n</section>'
        for key, title, content in sections
    )
    nav = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
    versions = ", ".join(f"{stage} <code>{spec.code_version(stage)}</code>" for stage in STAGES)
    title = f"Data card: {spec.name}"
    return _PAGE.format(
        title=html.escape(title),
        description=html.escape(spec.description or ""),
        versions=versions,
        shards=shards,
        nav=nav,
        body=body,
    )


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table of `rows` under `header`, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def img(png: bytes, alt: str, kind: str = "thumb") -> str:
    """An `<img>` with the PNG inline as a data URI."""
    data = base64.b64encode(png).decode()
    return f'<img class="{kind}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def code(text: str) -> str:
    """`text` escaped in a `<code>`, with a line-break opportunity after every dot so that long reason codes
    wrap between their parts inside narrow boxes."""
    return "<code>" + html.escape(text).replace(".", ".<wbr>") + "</code>"


def readable_number(value: float) -> str:
    """`value` for a label: whole numbers and anything from 100 up with thousands separators, the rest to
    three significant digits."""
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def clip(text: str, limit: int) -> str:
    """`text` on one line, cut to at most `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
section {{ border-top: 1px solid #ddd; margin-top: 1.5rem; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 0.5rem; }}
figure {{ margin: 0; max-width: 100%; }}
figcaption {{ font-family: monospace; }}
img.plot {{ max-width: 100%; }}
.samples {{ display: flex; flex-wrap: wrap; gap: 0.75rem; }}
.tile {{ width: 12rem; border: 1px solid #ddd; padding: 0.4rem; font-size: 0.8rem; display: flex;
  flex-direction: column; gap: 0.2rem; }}
.tile img {{ max-width: 100%; }}
code, td, figcaption, .tile span {{ overflow-wrap: anywhere; word-break: break-word; }}
.reason {{ color: #a33; }}
.synthetic {{ align-self: flex-start; background: #e8e4f8; color: #3d2c8d; border-radius: 0.3rem;
  padding: 0 0.3rem; }}
.no-plot {{ color: #555; font-style: italic; }}
.unshown {{ color: #777; font-style: italic; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{description}</p>
<p>{shards} shards. Code versions: {versions}.</p>
<nav>{nav}</nav>
</header>
{body}
</body>
</html>
"""
