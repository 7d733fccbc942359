"""LaTeX tables (jinja2 + booktabs) ready for ``\\input``: methods x sparsity levels.

When the config reproduces a published table that meets this one (see :mod:`.overlay`), each
method row gets, beneath it, one smaller row per published row it reproduces: the paper's value
(± its std where given) and Δ = ours − published, with † where the reproduction report's
verdict is "deviates" (the 95 % interval of Δ lies outside the margin) and "stand-in" where our
run is not the paper's setup (dataset, architecture, width, epochs), which is never judged. The paper's columns join ours (a dense column, levels we did not run), a
published cell with no result of ours reads "not run", and the paper's rows that this config
does not train, or that it only cites, follow below a rule, marked so.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import jinja2

from ..registry import COMPRESSORS
from . import published as pub
from . import reproduction as rep
from .overlay import Shown, published_text, shown_numbers
from .stats import FINETUNED, finetune_lines, load_summary, mean_std, metric_label

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}
DENSE = pub.DENSE  # the column of the unpruned model, from the published tables
NOT_RUN = "not run"
NOTES = [
    "Beside ours, the published numbers of {refs}: under each method, one smaller row per",
    "published row it reproduces, with the paper's value (+- its std where given) and the difference",
    "(Delta = ours - published); a dagger where the 95% interval of Delta lies outside the margin",
    "(REPRODUCTION.md); 'stand-in': our run is not the paper's setup and is not judged.",
    "'not run': a published cell with no result of ours. Below the last rule: rows of the paper that",
    "this config does not train ('not run') or that the paper only cites ('cited').",
]


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _environment() -> jinja2.Environment:
    # LaTeX is full of {% and {{, so the template uses << >> and <% %> instead.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("compressible.report", "templates"),
        block_start_string="<%", block_end_string="%>", variable_start_string="<<",
        variable_end_string=">>", comment_start_string="<#", comment_end_string="#>",
        keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined)


def level_header(level: str, operator: str) -> str:
    """Fractions removed in percent (0.9 -> 90\\%); bits, N:M patterns, energies as given."""
    if level == DENSE:
        return "Dense"
    if COMPRESSORS.fact(operator, "removes_fraction") and _is_number(level):
        return f"{100 * float(level):g}\\%"
    return latex_escape(level)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def same_level(a: str, b: str) -> bool:
    """'0.0' and '0' are the same sparsity; non-numeric levels ('2:4') compare as text."""
    return float(a) == float(b) if _is_number(a) and _is_number(b) else a == b


def cell(mean: float, std: float, best: bool) -> str:
    body = f"{mean:.1f} \\pm {std:.1f}"
    return f"$\\mathbf{{{body}}}$" if best else f"${body}$"


def accuracy_table(summary_csv, out_tex: str | Path, arch: str, operator: str, after_bnt: bool,
                   methods_order: list[str], levels: list[str] | None = None,
                   cfg: Optional[dict] = None, published_dir=None) -> Path:
    """Rows: methods in config order; columns: levels. Before BNT: mean ± std over seeds;
    after BNT: over every (seed, BNT trial) pair, as CrAM's Tables 11 and 17. ``cfg`` (the
    resolved config) adds the published numbers it reproduces; without any, ours alone."""
    df, methods_order = finetune_lines(load_summary(summary_csv), methods_order)
    stats = mean_std(df[(df["arch"] == arch) & (df["compressor"] == operator)], after_bnt,
                     pooled_trials=after_bnt)
    present = stats.drop_duplicates("level").sort_values(["level_value", "level"])["level"].tolist()
    columns = [p for lv in (levels or present) for p in present if same_level(lv, p)]
    shown = shown_numbers(cfg, arch, operator, after_bnt, published_dir)
    columns, rows, notes = _layout(summary_csv, stats, columns, shown, methods_order, cfg)
    when = "after BNT (mean $\\pm$ std over seeds and BNT trials)" if after_bnt else "before BNT (mean $\\pm$ std over seeds)"
    text = _environment().get_template("accuracy_table.tex.j2").render(
        source=Path(summary_csv).as_posix(), caption=f"{arch}, {operator}: test {metric_label(df)} (%) {when}",
        first_column="Method", header=[level_header(lv, operator) for lv in columns], rows=rows,
        notes=notes)
    return _write(out_tex, text)


def _layout(summary_csv, stats, columns: list[str], shown: list[Shown], methods_order: list[str],
            cfg: Optional[dict] = None) -> tuple:
    """(columns, rows, header notes): ours alone, or with the published rows when any are shown."""
    if not shown:
        return columns, _rows(stats, columns, methods_order), []
    grid = PublishedGrid(summary_csv, stats, columns, shown, cfg)
    refs = ", ".join(dict.fromkeys(s.ref for s in shown))
    return grid.columns, grid.rows(methods_order), [line.format(refs=refs) for line in NOTES]


def _rows(stats, columns: list[str], methods_order: list[str]) -> list[dict]:
    best = {lv: stats[stats["level"] == lv]["mean"].round(1).max() for lv in columns}
    rows = []
    for method in [m for m in methods_order if m in set(stats["method"])]:
        by_level = stats[stats["method"] == method].set_index("level")
        cells = [cell(by_level.at[lv, "mean"], by_level.at[lv, "std"], round(by_level.at[lv, "mean"], 1) == best[lv])
                 if lv in by_level.index else "--" for lv in columns]
        rows.append(_row(latex_escape(method), cells))
    return rows


def _row(label: str, cells: list[str], rule: bool = False) -> dict:
    return {"label": label, "cells": cells, "rule": rule}


def _write(out_tex, text: str) -> Path:
    out_tex = Path(out_tex)
    out_tex.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_tex.with_name(out_tex.name + ".partial")
    tmp.write_text(text)
    tmp.replace(out_tex)
    return out_tex


# ---------------------------------------------------------------- published rows

def small(text: str) -> str:
    return f"{{\\footnotesize {text}}}"


def delta_text(number: pub.Number, ours: rep.Ours, cfg: Optional[dict] = None) -> str:
    """'$\\Delta\\,{-2.1}^{\\dagger}$': ours − published, one decimal as the tables print; the
    dagger where the reproduction report's verdict is 'deviates'; ', stand-in' where our run is
    not the paper's setup (``cfg``, the resolved config, tells)."""
    d = f"{ours.mean - number.value:+.1f}".replace("-0.0", "+0.0")
    verdict = rep.verdict(number, ours, cfg)
    mark = "^{\\dagger}" if verdict == "deviates" else ""
    return f"$\\Delta\\,{{{d}}}{mark}$" + (", stand-in" if verdict == "stand-in" else "")


def _level_order(level: str) -> tuple:
    return (0, float(level), "") if _is_number(level) else (1, 0.0, level)


class PublishedGrid:
    """Our rows with the published rows beneath them, over our columns and the paper's."""

    def __init__(self, summary_csv, stats, columns: list[str], shown: list[Shown], cfg: Optional[dict] = None):
        self.stats, self.shown, self.cfg = stats, shown, cfg
        self.df = load_summary(summary_csv)  # for rep.ours_for
        self.dense = next((s.cell for s in shown if s.cell.compressor == DENSE), None)
        self.columns = ([DENSE] if self.dense else []) + self._levels(columns)

    def _levels(self, columns: list[str]) -> list[str]:
        levels = dict.fromkeys(str(s.cell.level) for s in self.shown if s.cell.compressor != DENSE)
        missing = [lv for lv in levels if not any(same_level(lv, c) for c in columns)]
        return sorted(columns + missing, key=_level_order) if missing else columns

    def column_of(self, c: pub.Cell) -> str:
        if c.compressor == DENSE:
            return DENSE
        return next(col for col in self.columns if col != DENSE and same_level(col, str(c.level)))

    def ours(self, label: str, column: str) -> Optional[tuple]:
        """(mean, std) of one of our cells: the table's statistics; dense from the report's."""
        if column == DENSE:
            found = rep.ours_for(self.df, self.dense, label)
            return (found.mean, found.std) if found else None
        part = self.stats[(self.stats["method"] == label) & (self.stats["level"] == column)]
        return (part["mean"].iloc[0], part["std"].iloc[0]) if len(part) else None

    def rows(self, methods_order: list[str]) -> list[dict]:
        labels = [m for m in methods_order if m in set(self.stats["method"])
                  or any(m in s.labels for s in self.shown)]
        trained = set(self.stats["method"]) | set(labels)
        best = {c: max((round(v[0], 1) for v in (self.ours(m, c) for m in trained) if v), default=None)
                for c in self.columns}
        rows = []
        for label in labels:
            rows.append(self.our_row(label, best))
            rows += [self.published_row(label, group) for group in self._groups(label)]
        orphans = self._groups(None)
        return rows + [self.orphan_row(group, i == 0) for i, group in enumerate(orphans)]

    def _groups(self, label: Optional[str]) -> list[list[Shown]]:
        """The published rows reproduced by ``label`` (None: by no label), in published order."""
        groups: dict = {}
        for s in self.shown:
            if (label in s.labels) if label is not None else not s.labels:
                groups.setdefault(s.row, []).append(s)
        return list(groups.values())

    def our_row(self, label: str, best: dict) -> dict:
        published = {self.column_of(s.cell) for s in self.shown if label in s.labels}
        cells = []
        for column in self.columns:
            value = self.ours(label, column)
            cells.append(cell(value[0], value[1], round(value[0], 1) == best[column]) if value
                         else NOT_RUN if column in published else "--")
        return _row(latex_escape(label), cells)

    def published_row(self, label: str, group: list[Shown]) -> dict:
        first = group[0]
        name = first.ref + ("" if first.cell.row == label else f", {first.cell.row}")
        by_column = {self.column_of(s.cell): s for s in group}
        cells = [self._published_cell(by_column[c], label) if c in by_column else "" for c in self.columns]
        return _row(f"\\quad{small('published: ' + latex_escape(name))}", cells)

    def _published_cell(self, s: Shown, label: str) -> str:
        ours = rep.ours_for(self.df, s.cell, label.removesuffix(FINETUNED))  # the summary's own label
        value = f"${published_text(s.number)}$"
        return small(value + (f" ({delta_text(s.number, ours, self.cfg)})" if ours else ""))

    def orphan_row(self, group: list[Shown], first: bool) -> dict:
        s = group[0]
        why = "cited" if not s.cell.reproducible else NOT_RUN
        by_column = {self.column_of(x.cell): x for x in group}
        cells = [small(f"${published_text(by_column[c].number)}$") if c in by_column else "" for c in self.columns]
        return _row(small(latex_escape(f"{s.cell.row} ({s.ref}, {why})")), cells, rule=first)
