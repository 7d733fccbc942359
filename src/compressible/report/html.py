"""An HTML rendering of a Markdown report (REPRODUCTION.md) for ``snakemake --report``.

Snakemake's HTML report shows images, PDFs and HTML in place but offers any other file, Markdown
included, only as a download: the reproduction report therefore also exists as one self-contained
HTML page (no scripts, no external files), rendered by markdown-it (CommonMark plus pipe tables).
Same Markdown, same bytes.
"""
from __future__ import annotations

from pathlib import Path

import jinja2
from markdown_it import MarkdownIt


def render_markdown(text: str) -> str:
    """CommonMark with pipe tables; raw HTML in the text is escaped, never passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def title_of(text: str) -> str:
    """The first level-1 heading (``# …``), or an empty title."""
    return next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "")


def markdown_page(text: str) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("compressible.report", "templates"),
                             autoescape=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    body = render_markdown(text)
    return env.get_template("markdown_page.html.j2").render(title=title_of(text), body=body)


def write_markdown_page(markdown: str | Path, out: str | Path) -> Path:
    """``out``: the HTML page of the Markdown file ``markdown`` (written whole, then renamed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(markdown_page(Path(markdown).read_text(encoding="utf-8")), encoding="utf-8")
    tmp.replace(out)
    return out
