"""The published numbers that a generated table or figure shows beside ours.

A config names what it reproduces (``reproduces: [cram/table17, ...]``). Each entry that selects
a table's cells (not ``/claims`` alone) contributes the cells that meet one table or figure of
ours: same architecture, same one-shot operator, same before/after BNT, plus that published
table's dense column. Every cell carries the config's method labels that train its row, found by
the reproduction report's own matching, so tables, figures and REPRODUCTION.md always agree.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import published as pub
from .reproduction import matching_labels
from .stats import FINETUNED


@dataclass(frozen=True)
class Shown:
    """A published number to show, the config labels that train its row and its paper/table."""
    number: pub.Number
    labels: tuple  # () for a row the paper only cites, or one no method of the config trains
    ref: str

    @property
    def cell(self) -> pub.Cell:
        return self.number.cell

    @property
    def row(self) -> tuple:
        """The published row it belongs to: one line of a table per (table, setup, row)."""
        return (self.ref, self.cell.setup.name, self.cell.row)


def reproduced_tables(cfg: dict, directory=None) -> list:
    """The published tables whose cells the config reproduces, each once, in the config's order."""
    tables, seen = [], set()
    for paper, table, what in pub.resolve_references(cfg.get("reproduces") or [], directory):
        if "cells" in what and (paper.name, table.name) not in seen:
            seen.add((paper.name, table.name))
            tables.append(table)
    return tables


def meets(cell: pub.Cell, operator: str, after_bnt: bool) -> bool:
    return cell.compressor == operator and bool(cell.bnt) == after_bnt


def shown_numbers(cfg, arch: str, operator: str, after_bnt: bool, directory=None) -> list[Shown]:
    """The published numbers for our (arch, operator, before/after BNT) table or figure panel;
    none without a config or when its ``reproduces`` selects no table that meets it."""
    if not cfg:
        return []
    shown = []
    for table in reproduced_tables(cfg, directory):
        numbers = [n for n in table.numbers if arch in n.cell.setup.archs]
        if not any(meets(n.cell, operator, after_bnt) for n in numbers):
            continue
        ref = f"{table.paper}/{table.name}"
        shown += [Shown(n, line_labels(cfg, n.cell), ref) for n in numbers
                  if n.cell.compressor == pub.DENSE or meets(n.cell, operator, after_bnt)]
    return shown


def line_labels(cfg: dict, cell: pub.Cell) -> tuple:
    """The lines of ours that a published cell sits under: its method labels, "<label> +
    fine-tune" for a cell of a finetuned model (CrAM Table 5; stats.finetune_lines)."""
    return tuple(label + (FINETUNED if cell.finetune else "") for label in matching_labels(cfg, cell))


def published_text(number: pub.Number) -> str:
    """The value (± std where the paper gives one) exactly as printed: '92.2 \\pm 0.0', '93.10'."""
    value, std = pub.token_parts(number.token)
    return f"{value} \\pm {std}" if number.std is not None else value
