"""LaTeX tables (jinja2 + booktabs) ready for ``\\input``: methods x sparsity levels."""
from __future__ import annotations

import math
from pathlib import Path

import jinja2

from ..registry import COMPRESSORS
from .stats import load_summary, mean_std

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}


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
    if COMPRESSORS.get(operator).removes_fraction and _is_number(level):
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
                   methods_order: list[str], levels: list[str] | None = None) -> Path:
    """Rows: methods in config order; columns: levels. Before BNT: mean ± std over seeds;
    after BNT: over every (seed, BNT trial) pair, as CrAM's Tables 11 and 17."""
    df = load_summary(summary_csv)
    stats = mean_std(df[(df["arch"] == arch) & (df["compressor"] == operator)], after_bnt,
                     pooled_trials=after_bnt)
    present = stats.drop_duplicates("level").sort_values(["level_value", "level"])["level"].tolist()
    columns = [p for lv in (levels or present) for p in present if same_level(lv, p)]
    best = {lv: stats[stats["level"] == lv]["mean"].round(1).max() for lv in columns}
    rows = []
    for method in [m for m in methods_order if m in set(stats["method"])]:
        by_level = stats[stats["method"] == method].set_index("level")
        cells = [cell(by_level.at[lv, "mean"], by_level.at[lv, "std"], round(by_level.at[lv, "mean"], 1) == best[lv])
                 if lv in by_level.index else "--" for lv in columns]
        rows.append({"label": latex_escape(method), "cells": cells})
    when = "after BNT (mean $\\pm$ std over seeds and BNT trials)" if after_bnt else "before BNT (mean $\\pm$ std over seeds)"
    text = _environment().get_template("accuracy_table.tex.j2").render(
        source=Path(summary_csv).as_posix(), caption=f"{arch}, {operator}: test accuracy (%) {when}",
        first_column="Method", header=[level_header(lv, operator) for lv in columns], rows=rows)
    out_tex = Path(out_tex)
    out_tex.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_tex.with_name(out_tex.name + ".partial")
    tmp.write_text(text)
    tmp.replace(out_tex)
    return out_tex
