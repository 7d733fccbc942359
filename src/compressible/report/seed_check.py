"""The published numbers checked against the papers' texts, cell by cell.

The texts give each table as lines of cells (``a | b | c |``; the SFW-pruning slides separate
them by tabs), consecutive tables sometimes without a line between them and the multi-level
header flattened. Tables are counted in order of appearance, as the papers number them: a header
line (no decimal number in it) that follows a data line opens the next table. A data row's label
is its first cell and the non-value cells after it; a row whose label has fewer cells than the
table's first data row continues a merged (multirow) cell of the row above, whose leading cells it
takes, so that "Yes" under "ResNet18 | No" is "ResNet18 | Yes" and its cells line up.

Each number of a table (``configs/published/<paper>.yaml``: the table's ``source``, the group's
``label``, the column's cell index) is looked up by table position, row label and cell index and
compared with its token; a token moved to a neighbouring cell, or two rows' labels swapped, fails.
Each claim's sentence must stand in the text, and every table of the text must be stored or named
under ``excluded`` with a reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from . import published as pub

# a value cell: "77.3", "92.9 0.", "95.70.1", "75.11 0.1", "77.3%", "1.0x", or a missing value
_VALUE = re.compile(r"\d+(\.\d*)?(\s*\d+\.\d*)?\s*%?x?|N/A|N\.A\.|-|")
_DECIMAL = re.compile(r"\d\.\d")


@dataclass
class TextRow:
    label: str  # the label cells joined by " | ", merged cells filled in
    cells: list  # the row's cells, merged label cells filled in (cell 0 is the first label cell)
    line: str  # the line as the text has it, spaces normalized


@dataclass
class TextTable:
    position: int  # 1-based, in order of appearance in the text
    header: list = field(default_factory=list)  # the header lines, spaces normalized
    rows: list = field(default_factory=list)

    def row(self, label: str) -> TextRow:
        found = [r for r in self.rows if r.label == label]
        if len(found) != 1:
            labels = ", ".join(repr(r.label) for r in self.rows)
            raise LookupError(f"table {self.position} has {len(found)} rows labelled {label!r}; its rows: {labels}")
        return found[0]

    def value_cells(self) -> list[tuple]:
        """(label, index) of every cell that prints a number (missing values excluded)."""
        return [(r.label, i) for r in self.rows for i, c in enumerate(r.cells)
                if i >= _label_width(r.cells) and re.search(r"\d", c)]


def split_cells(line: str) -> Optional[list]:
    """The cells of a table line, or None for a line that is not one (fewer than two cells)."""
    line = line.replace("\\|", "")  # LaTeX's norm bars (the SFW slides' equations) separate no cells
    sep = "|" if "|" in line else "\t" if "\t" in line else None
    if sep is None:
        return None
    cells = [pub.normalize_space(c) for c in line.split(sep)]
    return cells if sum(bool(c) for c in cells) >= 2 else None


def _is_value(cell: str) -> bool:
    return _VALUE.fullmatch(cell) is not None


def _label_width(cells: list) -> int:
    width = 1
    while width < len(cells) and not _is_value(cells[width]):
        width += 1
    return width


def _is_data(cells: list) -> bool:
    return any(_DECIMAL.search(c) for c in cells[1:])


def text_tables(text: str) -> list[TextTable]:
    """Every table of a paper's text, in order of appearance."""
    tables, current, last_was_data = [], None, False
    for line in text.splitlines():
        cells = split_cells(line)
        if cells is None:
            current, last_was_data = None, False
            continue
        data = _is_data(cells)
        if current is None or (not data and last_was_data):
            current = TextTable(len(tables) + 1)
            tables.append(current)
        if data:
            current.rows.append(_row(cells, current.rows, pub.normalize_space(line)))
        else:
            current.header.append(pub.normalize_space(line))
        last_was_data = data
    return tables


def _row(cells: list, above: list, line: str) -> TextRow:
    width = _label_width(cells)
    table_width = _label_width(above[0].cells) if above else width
    if above and width < table_width:  # a merged label cell of the row above continues here
        cells = above[-1].cells[:table_width - width] + cells
        width = table_width
    return TextRow(" | ".join(cells[:width]), cells, line)


# ---------------------------------------------------------------- the checks

def number_problems(paper: pub.Paper, text: str) -> list[str]:
    """Every table number whose token is not the text's cell at its table, row label and column;
    every prose number whose context (a sentence) is not in the text."""
    tables, flat, problems = text_tables(text), pub.normalize_space(text), []
    for table in paper.tables.values():
        for number in table.numbers:
            if number.source is None:
                if number.context not in flat:
                    problems.append(f"{number.where}: the context {number.context!r} is not in the text")
                continue
            problems += _cell_problems(number, tables)
    return problems


def _cell_problems(number: pub.Number, tables: list) -> list[str]:
    src = number.source
    if not 1 <= src.table <= len(tables):
        return [f"{number.where}: the text has {len(tables)} tables, not a table {src.table}"]
    try:
        row = tables[src.table - 1].row(src.label)
    except LookupError as err:
        return [f"{number.where}: {err}"]
    problems = []
    if row.line.rstrip(" |") != number.context.rstrip(" |"):  # the contexts leave out trailing empty cells
        problems.append(f"{number.where}: the context {number.context!r} is not the row's line {row.line!r}")
    cell = row.cells[src.index] if src.index < len(row.cells) else None
    if cell != pub.normalize_space(number.token):
        problems.append(f"{number.where}: table {src.table}, row {src.label!r}, cell {src.index} "
                        f"reads {cell!r}, not the token {number.token!r}")
    return problems


def claim_problems(paper: pub.Paper, text: str) -> list[str]:
    """Every claim whose sentence does not stand in the text."""
    flat = pub.normalize_space(text)
    return [f"{c.where}: its sentence {c.sentence!r} is not in the text"
            for t in paper.tables.values() for c in t.claims if c.sentence not in flat]


def completeness(paper: pub.Paper, text: str) -> dict:
    """Each table of the text (and each position the data names beyond them), by position:
    ("stored", "<table names>"), ("excluded", reason) or ("missing", "")."""
    stored: dict = {}
    for table in paper.tables.values():
        if table.source is not None:
            stored.setdefault(table.source, []).append(table.name)
    positions = sorted({t.position for t in text_tables(text)} | set(stored) | set(paper.excluded))
    return {p: ("stored", ", ".join(stored[p])) if p in stored else
               ("excluded", paper.excluded[p]) if p in paper.excluded else ("missing", "")
            for p in positions}


def completeness_problems(paper: pub.Paper, text: str) -> list[str]:
    """Tables of the text neither stored nor excluded, positions the text lacks, and printed
    cells of a stored table that no number holds."""
    tables, problems = text_tables(text), []
    for position, (state, _) in completeness(paper, text).items():
        if position > len(tables):
            problems.append(f"{paper.source}: table {position} is named, but the text has {len(tables)} tables")
        elif state == "missing":
            problems.append(f"{paper.source}: the text's table {position} is missing: store it "
                            f"(a table's `source.table`) or name it under `excluded` with a reason")
    held = {(n.source.table, n.source.label, n.source.index)
            for t in paper.tables.values() for n in t.numbers if n.source is not None}
    for table in tables:
        if any(t.source == table.position for t in paper.tables.values()):
            problems += [f"{paper.source}: table {table.position}, row {label!r}, cell {i} is printed but not stored"
                         for label, i in table.value_cells() if (table.position, label, i) not in held]
    return problems


def problems(paper: pub.Paper, text: str) -> list[str]:
    """Everything the seed check finds wrong with one paper's data against its text."""
    return number_problems(paper, text) + claim_problems(paper, text) + completeness_problems(paper, text)
