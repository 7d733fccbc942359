"""`snakemake --report`: one self-contained HTML file with the figures, the tables and the
reproduction report (rendered), built from the session's finished tiny DAG (conftest.py), and
the Markdown -> HTML rendering behind it (report/html.py)."""
from __future__ import annotations

import base64
import json
import re
import time
from html import escape, unescape
from pathlib import Path

import pytest

from clones import ROOT, TINY, planned_jobs, run
from compressible.config import load_config
from compressible.report.html import markdown_page, render_markdown, title_of
from compressible.report.published import resolve_references

FIGURE = "figures/tiny/accuracy_vs_sparsity_resnet20_global_magnitude.png"
TABLES = [f"paper_tables/tiny/resnet20_global_magnitude_{kind}.tex" for kind in ("bnt", "nobnt")]
REPRODUCTION = "paper_tables/tiny/REPRODUCTION"


def embedded(html: str, name: str):
    """The JSON a script of the report assigns to ``var <name>``."""
    found = re.search(rf"^\s*var {name} = (\{{.*\}});\s*$", html, flags=re.M)
    assert found, f"no `var {name}` in the report"
    return json.loads(found.group(1))


def decoded(data_uri: str) -> bytes:
    return base64.b64decode(data_uri.split(";base64,", 1)[1])


def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (an escaped pipe stays inside its cell)."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def claim_rows(markdown: str) -> list[tuple[str, str]]:
    """(verdict, paper) of every row of REPRODUCTION.md's claim tables, in order."""
    rows, header = [], None
    for line in markdown.splitlines():
        if line.startswith("| claim |"):
            header = split_row(line)
        elif header and line.startswith("| ") and not line.startswith("| ---"):
            cells = dict(zip(header, split_row(line)))
            rows.append((cells["verdict"], cells["paper"]))
        elif not line.startswith("|"):
            header = None
    return rows


def html_rows(page: str) -> list[tuple[str, str]]:
    """(verdict, paper) of every body row of the rendered page's claim tables, in order."""
    def text(cell: str) -> str:
        return unescape(re.sub(r"<[^>]+>", "", cell)).strip()

    rows = []
    for table in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        header = [text(c) for c in re.findall(r"<th>(.*?)</th>", table, flags=re.S)]
        if header[:1] != ["claim"]:
            continue
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>", 1)[1], flags=re.S):
            cells = dict(zip(header, (text(c) for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S))))
            rows.append((cells["verdict"], cells["paper"]))
    return rows


@pytest.fixture(scope="module")
def report(pulled, env, tmp_path_factory) -> tuple[Path, str, float]:
    """`snakemake --report` on the finished run: it only collects files (no job runs)."""
    repo, out = pulled[0], tmp_path_factory.mktemp("report") / "report.html"
    start = time.perf_counter()
    log = run(["snakemake", "--report", str(out), *TINY], repo, env)
    seconds = time.perf_counter() - start
    assert planned_jobs(log, "all") == 0 and "Report created" in log
    return repo, out.read_text(encoding="utf-8"), seconds


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_pulled")
def test_report_holds_the_figure_tables_and_reproduction(report):
    repo, html, seconds = report
    results, categories = embedded(html, "results"), embedded(html, "categories")
    assert categories == {"Results": {"tiny": ["results/tiny/summary.csv"]},
                          "Figures": {"resnet20": [FIGURE]}, "Tables": {"resnet20": TABLES},
                          "Reproduction": {"tiny": [REPRODUCTION + ".html"]}}
    for path in [FIGURE, *TABLES, REPRODUCTION + ".html", "results/tiny/summary.csv"]:
        assert decoded(results[path]["data_uri"]) == (repo / path).read_bytes(), path
    assert results[FIGURE]["mime_type"] == "image/png"  # shown in place
    assert results[FIGURE]["labels"] == {"figure": "accuracy vs sparsity", "arch": "resnet20",
                                         "operator": "global_magnitude"}
    assert [results[t]["labels"]["BNT"] for t in TABLES] == ["after", "before"]
    assert all("\\toprule" in decoded(results[t]["data_uri"]).decode() for t in TABLES)
    assert results[REPRODUCTION + ".html"]["mime_type"] == "text/html"  # shown in place, not a download
    assert "Experiment <strong>tiny</strong>: end-to-end smoke test" in html  # the front page
    assert seconds < 30, f"--report took {seconds:.0f} s"


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_pulled")
def test_reproduction_in_the_report_shows_every_verdict_of_the_markdown(report):
    repo, html, _ = report
    page = decoded(embedded(html, "results")[REPRODUCTION + ".html"]["data_uri"]).decode()
    markdown = (repo / (REPRODUCTION + ".md")).read_text(encoding="utf-8")
    papers = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]  # "cram: k of n claims hold"
    assert papers and all(f"<h2>{escape(p, quote=False)}</h2>" in page for p in papers)
    claims = sum(len(table.claims) for _, table, _ in resolve_references(load_config(ROOT / "configs" / "tiny.yaml").reproduces))
    rows = claim_rows(markdown)
    assert len(rows) == claims > 0
    assert {verdict for verdict, _ in rows} <= {"holds", "does not hold", "inconclusive", "not run"}
    assert html_rows(page) == rows


# ---------------------------------------------------------------- the rendering

def test_markdown_tables_render_with_escaped_pipes_and_no_raw_html():
    text = "# A & B\n\n| claim | verdict |\n| --- | --- |\n| a \\| b <script>x</script> | holds |\n"
    body = render_markdown(text)
    assert "<h1>A &amp; B</h1>" in body
    assert "<td>a | b &lt;script&gt;x&lt;/script&gt;</td>" in body and "<td>holds</td>" in body
    assert "<script>" not in body


def test_page_is_standalone_titled_and_deterministic():
    text = "intro\n\n# Reproduction report: <tiny>\n\nbody **bold**\n"
    page = markdown_page(text)
    assert title_of(text) == "Reproduction report: <tiny>"
    assert "<title>Reproduction report: &lt;tiny&gt;</title>" in page
    assert "<p>body <strong>bold</strong></p>" in page
    assert not re.search(r"<(script|link)\b|src=|href=", page)  # nothing outside the file
    assert page == markdown_page(text)
